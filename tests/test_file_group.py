"""Group commit on the real file: one fdatasync for every change queued behind it.

Syncs are counted by wrapping ``os.fdatasync`` (the store looks it up at call
time). The first sync can be held until a given number of changes has been
applied in memory, so a group forms deterministically, without timers: the
store's own hooks (``_lead`` for threads, ``_begin`` for tasks) tell the gate
each time a change arrives. Threads and asyncio/trio tasks are tested alike,
including a failed sync (every caller of the group gets StoreIOError and the
store stops) and cancelled tasks (the flush machinery is never left stuck).
"""

from __future__ import annotations

import errno
import os
import threading
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest

from fixseq import AsyncFileSeqStore, FileSeqStore, SeqState, StoreIOError
from fixseq._file import read_file_state

if TYPE_CHECKING:
    from pathlib import Path

THREADS = 16
TASKS = 64


class SyncGate:
    """Wraps ``os.fdatasync``: counts syncs, records the synced next_out, holds or fails the first.

    ``hold_until``: the first sync waits (in its worker thread) until the store
    has applied that many changes. ``fail_first``: that sync then raises EIO.
    """

    def __init__(
        self,
        store: FileSeqStore,
        monkeypatch: pytest.MonkeyPatch,
        *,
        hold_until: int = 0,
        fail_first: bool = False,
    ) -> None:
        self.store = store
        self.path = store.path
        self.syncs = 0
        self.synced_out = read_file_state(self.path).state.next_out
        self.hold_until = hold_until
        self.fail_first = fail_first
        self.changed = threading.Condition()
        self.in_first = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._real = os.fdatasync
        monkeypatch.setattr(os, "fdatasync", self.fdatasync)
        # The store's hooks run (under its counter lock) for every change that
        # needs a write; notifying here lets the held sync see the changes arrive.
        lead, submit = store._lead, store._begin

        def leading(ticket: int) -> bool:
            self.notify()
            return lead(ticket)

        def submitting(op: str, seq_num: int) -> tuple[int, int]:
            result = submit(op, seq_num)
            self.notify()
            return result

        monkeypatch.setattr(store, "_lead", leading)
        monkeypatch.setattr(store, "_begin", submitting)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def fdatasync(self, fd: int) -> None:
        first = self.syncs == 0
        self.syncs += 1  # syncs are serialized by the store's writer lock
        if first:
            self.in_first.set()
            with self.changed:
                assert self.changed.wait_for(
                    lambda: self.store._changes >= self.hold_until, timeout=60
                ), "the group never formed"
            assert self.release.wait(60)
            if self.fail_first:
                raise OSError(errno.EIO, "the disk said no")
        self._real(fd)
        self.synced_out = read_file_state(self.path).state.next_out


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "group.seq"


def run_threads(count: int, work: object) -> None:
    assert callable(work)
    workers = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert not worker.is_alive()


# -- threads ---------------------------------------------------------------------------


def test_16_threads_share_syncs_and_each_number_is_durable_before_it_returns(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    per_thread = 20
    store = FileSeqStore(path)
    gate = SyncGate(store, monkeypatch, hold_until=THREADS)
    taken: list[list[int]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS)
    late: list[tuple[int, int]] = []

    def work(index: int) -> None:
        start.wait()
        for _ in range(per_thread):
            n = store.next_out()
            synced = gate.synced_out
            if synced <= n:
                late.append((n, synced))
            taken[index].append(n)

    run_threads(THREADS, work)
    changes = THREADS * per_thread
    assert late == []  # every number was durable (synced past it) when returned
    numbers = sorted(n for chunk in taken for n in chunk)
    assert numbers == list(range(1, changes + 1))
    # The first sync was held until all 16 had changed; the 15 queued behind
    # it then shared one sync, so at least 14 syncs were saved.
    assert gate.syncs <= changes - (THREADS - 2), (gate.syncs, changes)
    store.close()
    assert read_file_state(path).state == SeqState(changes + 1, 1)


def test_a_lone_caller_pays_one_sync_per_change(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileSeqStore(path)
    gate = SyncGate(store, monkeypatch)
    for expected in range(1, 11):
        assert store.next_out() == expected
        assert gate.synced_out == expected + 1  # synced before it returned
    assert gate.syncs == 10
    store.close()


def test_a_failed_sync_fails_every_caller_in_its_group_and_stops_the_store(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FileSeqStore(path) as before:
        before.set_next_out(100)
    store = FileSeqStore(path)
    SyncGate(store, monkeypatch, hold_until=THREADS, fail_first=True)
    start = threading.Barrier(THREADS)
    outcomes: list[object] = [None] * THREADS

    def work(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = store.next_out()
        except StoreIOError as exc:
            outcomes[index] = exc

    run_threads(THREADS, work)
    assert all(isinstance(o, StoreIOError) for o in outcomes), outcomes  # nobody got a number
    with pytest.raises(StoreIOError):
        store.next_out()
    store.close()
    monkeypatch.undo()
    with FileSeqStore(path) as again:
        # Nothing acknowledged, so nothing to protect; the pwrite may have
        # reached the page cache before the failed sync.
        assert 100 <= again.peek_out() <= 101 + THREADS


# -- tasks (asyncio and trio) ----------------------------------------------------------


@pytest.mark.anyio
async def test_64_tasks_share_syncs_and_each_number_is_durable_before_it_returns(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    per_task = 5
    twin = await AsyncFileSeqStore.open(path)
    gate = SyncGate(twin.as_sync(), monkeypatch, hold_until=TASKS)
    taken: list[int] = []
    late: list[tuple[int, int]] = []

    async def work() -> None:
        for _ in range(per_task):
            n = await twin.next_out()
            if gate.synced_out <= n:
                late.append((n, gate.synced_out))
            taken.append(n)
            await twin.observed_in(n)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                group.start_soon(work)
    changes = TASKS * per_task
    assert late == []
    assert sorted(taken) == list(range(1, changes + 1))
    # 2 x 320 changes (next_out and observed_in): far fewer syncs.
    assert gate.syncs <= 2 * changes - (TASKS - 2), gate.syncs
    assert await twin.snapshot() == SeqState(changes + 1, changes + 1)
    await twin.aclose()
    assert read_file_state(path).state == SeqState(changes + 1, changes + 1)


@pytest.mark.anyio
async def test_a_failed_sync_fails_every_waiting_task(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = await AsyncFileSeqStore.open(path)
    SyncGate(twin.as_sync(), monkeypatch, hold_until=TASKS, fail_first=True)
    outcomes: list[object] = []

    async def work() -> None:
        try:
            outcomes.append(await twin.next_out())
        except StoreIOError as exc:
            outcomes.append(exc)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for _ in range(TASKS):
                group.start_soon(work)
    assert len(outcomes) == TASKS
    assert all(isinstance(o, StoreIOError) for o in outcomes), outcomes
    with pytest.raises(StoreIOError):
        await twin.observed_in(1)
    await twin.aclose()


@pytest.mark.anyio
async def test_cancelled_tasks_never_cut_a_write_short_nor_leave_the_flush_stuck(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = await AsyncFileSeqStore.open(path)
    store = twin.as_sync()
    gate = SyncGate(store, monkeypatch, hold_until=1)
    gate.release.clear()  # the first sync waits for the test
    done: dict[str, int] = {}
    scopes: dict[str, anyio.CancelScope] = {}
    all_queued = anyio.Event()
    submit = store._begin

    def submitting(op: str, seq_num: int) -> tuple[int, int]:
        result = submit(op, seq_num)  # on the loop's thread: an anyio Event may be set
        if store._changes >= 3:
            all_queued.set()
        return result

    monkeypatch.setattr(store, "_begin", submitting)

    async def take(name: str) -> None:
        with anyio.CancelScope() as scope:
            scopes[name] = scope
            done[name] = await twin.next_out()

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            group.start_soon(take, "flusher")
            await anyio.to_thread.run_sync(gate.in_first.wait)  # its write is in the sync
            group.start_soon(take, "waiter")
            group.start_soon(take, "kept")
            await all_queued.wait()  # both queued behind the write in flight
            scopes["flusher"].cancel()  # its thread must still finish the write
            scopes["waiter"].cancel()  # a plain waiter: it just leaves
            gate.release.set()
    # The uncancelled task got its number, durably: the flush was not left stuck.
    # The waiter was cancelled while it waited; the flusher's write finished in
    # its thread, so it may return its (durable) number if no checkpoint follows.
    assert "kept" in done and "waiter" not in done, done
    assert done.get("flusher", 1) == 1
    assert gate.synced_out > done["kept"]
    assert [await twin.next_out() for _ in range(3)] == [4, 5, 6]  # still working
    await twin.aclose()
    # A cancelled call's number is skipped, never reused.
    assert read_file_state(path).state.next_out == 7
