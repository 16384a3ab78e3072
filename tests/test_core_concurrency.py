"""Concurrency: threads, tasks and both twins at once never share a number or lose an update."""

from __future__ import annotations

import threading

import anyio
import pytest

from fixseq import AsyncMemorySeqStore, MemorySeqStore

THREADS = 8
PER_THREAD = 20_000


def test_threads_get_each_number_exactly_once() -> None:
    store = MemorySeqStore()
    start = threading.Barrier(THREADS)
    results: list[list[int]] = [[] for _ in range(THREADS)]

    def worker(out: list[int]) -> None:
        next_out = store.next_out
        start.wait()
        for _ in range(PER_THREAD):
            out.append(next_out())

    threads = [threading.Thread(target=worker, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = sorted(n for out in results for n in out)
    assert taken == list(range(1, THREADS * PER_THREAD + 1))
    assert store.peek_out() == THREADS * PER_THREAD + 1
    for out in results:  # each thread saw its own numbers strictly increasing
        assert out == sorted(out)


def test_concurrent_observed_in_never_regresses_and_ends_at_max() -> None:
    store = MemorySeqStore()
    start = threading.Barrier(5)
    stop = threading.Event()
    regressions: list[tuple[int, int]] = []

    def observer(offset: int) -> None:
        start.wait()
        for n in range(offset, 20_000, 4):
            store.observed_in(n + 1)

    def watcher() -> None:
        start.wait()
        last = 0
        while not stop.is_set():
            now = store.current_in()
            if now < last:
                regressions.append((last, now))
            last = now

    watch = threading.Thread(target=watcher)
    workers = [threading.Thread(target=observer, args=(i,)) for i in range(4)]
    watch.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    watch.join()
    assert regressions == []
    assert store.current_in() == 20_001


@pytest.mark.anyio
async def test_tasks_get_each_number_exactly_once() -> None:
    store = AsyncMemorySeqStore()
    taken: list[int] = []
    tasks, per_task = 500, 40

    async def worker() -> None:
        for _ in range(per_task):
            taken.append(await store.next_out())
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(worker)
    assert sorted(taken) == list(range(1, tasks * per_task + 1))


@pytest.mark.anyio
async def test_sync_and_async_twins_at_once_never_share_a_number() -> None:
    sync = MemorySeqStore()
    twin = sync.as_async()
    from_threads: list[int] = []
    from_tasks: list[int] = []
    per_thread, threads, tasks, per_task = 5_000, 4, 50, 100
    lock = threading.Lock()

    def thread_worker() -> None:
        mine = [sync.next_out() for _ in range(per_thread)]
        with lock:
            from_threads.extend(mine)

    async def task_worker() -> None:
        for _ in range(per_task):
            from_tasks.append(await twin.next_out())
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(threads):
            tg.start_soon(anyio.to_thread.run_sync, thread_worker)
        for _ in range(tasks):
            tg.start_soon(task_worker)
    total = threads * per_thread + tasks * per_task
    assert sorted(from_threads + from_tasks) == list(range(1, total + 1))
