"""Group commit and outbound reservation on the file store (issue 10), as ratios in one run.

Run from the repository root: ``python -m benchmarks.bench_group [--rounds N] [--json PATH]``.
The files go to a temporary directory under ``$FIXSEQ_BENCH_DIR`` (default: the
system's temporary directory); put it on the file system you care about.

Each row is measured interleaved with its baseline, on stores of their own:

- 16 threads sharing one ``FileSeqStore(fsync=True)``: aggregate next_out/s
  against one thread on a store of its own; target >= 3x.
- 64 asyncio tasks sharing one ``AsyncFileSeqStore``: aggregate next_out/s
  against one task; target >= 8x.
- One thread, ``FileSeqStore(reserve=1000)`` (fsync on) against
  ``FileSeqStore(fsync=False)``; target >= 0.5x.
- ``FileSeqStore(fsync=False)`` against a bare 44-byte ``pwrite`` (the issue 4
  target, >= 0.5x, repeated here because the reservation row is measured
  against it).
"""

from __future__ import annotations

import os
import tempfile
import time

import anyio

from benchmarks._harness import Bench, Pair, in_threads, parse_args, run_pairs
from fixseq import AsyncFileSeqStore, FileSeqStore

THREADS = 16
TASKS = 64
RESERVE = 1000
SLOT = b"\x01" * 44


def main() -> None:
    args = parse_args(__doc__ or "")
    with tempfile.TemporaryDirectory(dir=os.environ.get("FIXSEQ_BENCH_DIR")) as directory:

        def file(name: str, **options: object) -> FileSeqStore:
            return FileSeqStore(os.path.join(directory, name), **options)  # type: ignore[arg-type]

        shared = file("threads.seq")
        lone = file("lone.seq")
        tasks_twin = AsyncFileSeqStore._over(file("tasks.seq"))
        task_twin = AsyncFileSeqStore._over(file("task.seq"))
        reserved = file("reserved.seq", reserve=RESERVE)
        unsynced = file("unsynced.seq", fsync=False)
        bare_fd = os.open(os.path.join(directory, "bare"), os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(bare_fd, bytes(3 * 4096), 0)

        def loop(store: FileSeqStore) -> Bench:
            def run(n: int) -> None:
                next_out = store.next_out
                for _ in range(n):
                    next_out()

            return Bench(repr_of(store), run)

        run_threads = in_threads(shared.next_out, THREADS)

        def run_tasks(twin: AsyncFileSeqStore, count: int) -> Bench:
            def run(n: int) -> float:
                async def main() -> float:
                    async def work() -> None:
                        for _ in range(n):
                            await twin.next_out()

                    began = time.perf_counter()
                    async with anyio.create_task_group() as group:
                        for _ in range(count):
                            group.start_soon(work)
                    return time.perf_counter() - began

                return anyio.run(main, backend="asyncio")

            name = f"{count} asyncio task{'s' if count > 1 else ''}, one AsyncFileSeqStore"
            return Bench(name, run, count)

        def run_bare(n: int) -> None:
            pwrite = os.pwrite
            for _ in range(n):
                pwrite(bare_fd, SLOT, 4096)

        pairs = [
            Pair(
                Bench(f"{THREADS} threads, one FileSeqStore (aggregate)", run_threads, THREADS),
                Bench("1 thread, FileSeqStore", loop(lone).run),
                max_time_ratio=1 / 3,
                target=">= 3x one thread",
            ),
            Pair(
                run_tasks(tasks_twin, TASKS),
                run_tasks(task_twin, 1),
                max_time_ratio=1 / 8,
                target=">= 8x one task",
            ),
            Pair(
                Bench(f"FileSeqStore(reserve={RESERVE}).next_out", loop(reserved).run),
                Bench("FileSeqStore(fsync=False).next_out", loop(unsynced).run),
                max_time_ratio=1 / 0.5,
                target=">= 0.5x fsync=False",
            ),
            Pair(
                Bench("FileSeqStore(fsync=False).next_out", loop(unsynced).run),
                Bench("bare 44-byte pwrite", run_bare),
                max_time_ratio=1 / 0.5,
                target=">= 0.5x floor",
            ),
        ]
        try:
            run_pairs(
                pairs,
                title="fixseq group commit and reservation (file store)",
                rounds=args.rounds,
                seconds=args.seconds,
                json_path=args.json,
            )
        finally:
            for store in (shared, lone, tasks_twin.as_sync(), task_twin.as_sync(), reserved):
                store.close()
            unsynced.close()
            os.close(bare_fd)


def repr_of(store: FileSeqStore) -> str:
    """A short name for a store in the table."""
    return os.path.basename(store.path)


if __name__ == "__main__":
    main()
