"""File store figures, each beside its raw floor on the same file system, interleaved.

Run from the repository root: ``python -m benchmarks.bench_file [--rounds N] [--json PATH]``.
The files go to a temporary directory under ``$FIXSEQ_BENCH_DIR`` (default: the
system's temporary directory); put it on the file system you care about.

Targets (issue 4), as throughput against the floor:
- FileSeqStore(fsync=True).next_out >= 0.8x a bare 32-byte pwrite + fdatasync loop;
- FileSeqStore(fsync=False).next_out >= 0.5x a bare 32-byte pwrite loop;
- AsyncFileSeqStore.next_out under asyncio >= 0.8x a bare
  ``anyio.to_thread.run_sync(pwrite + fdatasync)`` loop;
- 16 threads sharing one durable store: aggregate next_out/s, beside one thread
  on the same store (no target here; the group-commit targets of issue 10 are
  measured by ``benchmarks/bench_group.py``).
"""

from __future__ import annotations

import os
import tempfile
import time

import anyio
import anyio.to_thread

from benchmarks._harness import Bench, Pair, in_threads, parse_args, run_pairs
from fixseq import AsyncFileSeqStore, FileSeqStore

PAYLOAD = b"\x01" * 32
THREADS = 16


def bare_file(directory: str, name: str) -> int:
    """A preallocated file the size of a store file, opened for the floors."""
    fd = os.open(os.path.join(directory, name), os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(fd, bytes(3 * 4096), 0)
    os.fsync(fd)
    return fd


def main() -> None:
    args = parse_args(__doc__ or "")
    with tempfile.TemporaryDirectory(dir=os.environ.get("FIXSEQ_BENCH_DIR")) as directory:
        durable = FileSeqStore(os.path.join(directory, "durable.seq"))
        unsynced = FileSeqStore(os.path.join(directory, "unsynced.seq"), fsync=False)
        shared = FileSeqStore(os.path.join(directory, "shared.seq"))
        twin = AsyncFileSeqStore._over(FileSeqStore(os.path.join(directory, "async.seq")))
        fd_sync = bare_file(directory, "bare-sync")
        fd_write = bare_file(directory, "bare-write")
        fd_async = bare_file(directory, "bare-async")

        def run_durable(n: int) -> None:
            next_out = durable.next_out
            for _ in range(n):
                next_out()

        def run_bare_sync(n: int) -> None:
            pwrite, fdatasync = os.pwrite, os.fdatasync
            for _ in range(n):
                pwrite(fd_sync, PAYLOAD, 4096)
                fdatasync(fd_sync)

        def run_unsynced(n: int) -> None:
            next_out = unsynced.next_out
            for _ in range(n):
                next_out()

        def run_bare_write(n: int) -> None:
            pwrite = os.pwrite
            for _ in range(n):
                pwrite(fd_write, PAYLOAD, 4096)

        def run_async(n: int) -> float:
            async def loop() -> float:
                start = time.perf_counter()
                for _ in range(n):
                    await twin.next_out()
                return time.perf_counter() - start

            return anyio.run(loop, backend="asyncio")

        def write_and_sync() -> None:
            os.pwrite(fd_async, PAYLOAD, 4096)
            os.fdatasync(fd_async)

        def run_bare_async(n: int) -> float:
            async def loop() -> float:
                start = time.perf_counter()
                for _ in range(n):
                    await anyio.to_thread.run_sync(write_and_sync)
                return time.perf_counter() - start

            return anyio.run(loop, backend="asyncio")

        run_threads = in_threads(shared.next_out, THREADS)

        def run_one_thread(n: int) -> None:
            next_out = shared.next_out
            for _ in range(n):
                next_out()

        pairs = [
            Pair(
                Bench("FileSeqStore(fsync=True).next_out", run_durable),
                Bench("bare 32-byte pwrite + fdatasync", run_bare_sync),
                max_time_ratio=1 / 0.8,
                target=">= 0.8x floor",
            ),
            Pair(
                Bench("FileSeqStore(fsync=False).next_out", run_unsynced),
                Bench("bare 32-byte pwrite", run_bare_write),
                max_time_ratio=1 / 0.5,
                target=">= 0.5x floor",
            ),
            Pair(
                Bench("AsyncFileSeqStore.next_out (asyncio)", run_async),
                Bench("bare to_thread.run_sync(pwrite + fdatasync)", run_bare_async),
                max_time_ratio=1 / 0.8,
                target=">= 0.8x floor",
            ),
            Pair(
                Bench(f"{THREADS} threads, one FileSeqStore(fsync=True)", run_threads, THREADS),
                Bench("1 thread, same store", run_one_thread),
                target="aggregate (baseline for group commit)",
            ),
        ]
        try:
            run_pairs(
                pairs,
                title="fixseq file store",
                rounds=args.rounds,
                seconds=args.seconds,
                json_path=args.json,
            )
        finally:
            for store in (durable, unsynced, shared, twin.as_sync()):
                store.close()
            for fd in (fd_sync, fd_write, fd_async):
                os.close(fd)


if __name__ == "__main__":
    main()
