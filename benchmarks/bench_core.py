"""Core figures: MemorySeqStore.next_out beside a bare lock-guarded increment, and the async twin.

Run from the repository root: ``python -m benchmarks.bench_core [--rounds N] [--json PATH]``.

Targets (issue 2): MemorySeqStore.next_out at most 1.3x the bare method's time;
AsyncMemorySeqStore.next_out under asyncio at most 2.5x the sync one. Since every
async call is a checkpoint (issue 15: it yields to the scheduler once), the async
rows are also shown beside their own floor, a bare ``anyio.lowlevel.checkpoint()``
and then the sync call: the yield alone costs several sync calls.
"""

from __future__ import annotations

import threading
import time

import anyio
import anyio.lowlevel

from benchmarks._harness import Bench, Pair, parse_args, run_pairs
from fixseq import AsyncMemorySeqStore, MemorySeqStore


class BareCounter:
    """The raw floor: the least a thread-safe counter method can do in Python."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 1

    def next(self) -> int:
        with self._lock:
            n = self._next
            self._next = n + 1
            return n


def bare_run(n: int) -> None:
    next_ = BareCounter().next
    for _ in range(n):
        next_()


def store_run(n: int) -> None:
    next_out = MemorySeqStore().next_out
    for _ in range(n):
        next_out()


def async_run(backend: str) -> Bench:
    def run(n: int) -> float:
        store = AsyncMemorySeqStore()

        async def loop() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await store.next_out()
            return time.perf_counter() - start

        return anyio.run(loop, backend=backend)

    return Bench(f"AsyncMemorySeqStore.next_out ({backend})", run)


def checkpoint_run(backend: str) -> Bench:
    """The floor of an async call that is a checkpoint: one bare yield, then the sync call."""

    def run(n: int) -> float:
        next_out = MemorySeqStore().next_out
        checkpoint = anyio.lowlevel.checkpoint

        async def loop() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await checkpoint()
                next_out()
            return time.perf_counter() - start

        return anyio.run(loop, backend=backend)

    return Bench(f"checkpoint + next_out ({backend})", run)


def main() -> None:
    args = parse_args(__doc__ or "")
    bare = Bench("bare locked increment", bare_run)
    sync = Bench("MemorySeqStore.next_out", store_run)
    pairs = [
        Pair(sync, bare, max_time_ratio=1.3, target="<= 1.3x bare"),
        Pair(async_run("asyncio"), sync, max_time_ratio=2.5, target="<= 2.5x sync"),
        Pair(async_run("trio"), sync, target="(no target)"),
        Pair(async_run("asyncio"), checkpoint_run("asyncio"), target="(overhead of the twin)"),
        Pair(async_run("trio"), checkpoint_run("trio"), target="(overhead of the twin)"),
    ]
    run_pairs(
        pairs, title="fixseq core", rounds=args.rounds, seconds=args.seconds, json_path=args.json
    )


if __name__ == "__main__":
    main()
