"""The core's durable-store machinery, on a store whose writes are recorded in memory.

Group commit (one write covers every caller queued behind it), write-ahead
(no caller returns before a write covering its change), fail-stop, and the
outbound reservation. The real stores run the same machinery against disks and
databases in their own tests.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from fixseq import (
    MAX_SEQ_NUM,
    InvalidSeqNumError,
    SeqCounters,
    SeqNumExhaustedError,
    StoreClosedError,
    StoreIOError,
)

if TYPE_CHECKING:
    import datetime

THREADS = 16


class RecordingStore(SeqCounters):
    """A durable store whose 'disk' is a list of written states."""

    _durable = True

    def __init__(self, *, reserve: int = 1, gate_first_write_until: int = 0) -> None:
        super().__init__()
        self._set_reserve(reserve)
        self.writes: list[tuple[int, int]] = []
        self.fail_on_write: int | None = None
        self.released = 0
        self._gate = gate_first_write_until
        self._changed = threading.Condition()

    def _lead(self, ticket: int) -> bool:
        # Called (lock held) after every change that needs a write.
        with self._changed:
            self._changed.notify_all()
        return super()._lead(ticket)

    def _begin(self, op: str, seq_num: int) -> tuple[int, int]:
        # The async twins' way in: the change is applied, nothing written yet.
        result = super()._begin(op, seq_num)
        with self._changed:
            self._changed.notify_all()
        return result

    def _persist(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        if self._gate and not self.writes:
            # Hold the first write until every other caller has queued its change.
            with self._changed:
                assert self._changed.wait_for(lambda: self._changes >= self._gate, timeout=30)
        if self.fail_on_write == len(self.writes):
            raise StoreIOError("disk said no")
        self.writes.append((next_out, next_in))

    def _release(self) -> None:
        self.released += 1

    @property
    def durable(self) -> tuple[int, int]:
        return self.writes[-1] if self.writes else (1, 1)


def test_a_lone_caller_is_durable_before_it_returns() -> None:
    store = RecordingStore()
    for _ in range(5):
        n = store.next_out()
        assert store.durable[0] > n
    store.observed_in(7)
    assert store.durable == (6, 8)
    store.observed_in(3)  # below the mark: nothing to write
    assert len(store.writes) == 6
    store.set_next_in(2)
    assert store.durable == (6, 2)
    store.reset()
    assert store.durable == (1, 1)
    assert len(store.writes) == 8


def test_concurrent_callers_share_one_write() -> None:
    store = RecordingStore(gate_first_write_until=THREADS)
    start = threading.Barrier(THREADS)
    taken: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        n = store.next_out()
        assert store.durable[0] > n  # durable before it returned
        with lock:
            taken.append(n)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, THREADS + 1))
    assert len(store.writes) < THREADS  # batched: fewer writes than changes
    assert len(store.writes) == 2  # the first caller's write, then one for the 15 behind it
    assert store.durable == (THREADS + 1, 1)


def test_a_failed_write_fails_its_whole_group_and_stops_the_store() -> None:
    store = RecordingStore(gate_first_write_until=THREADS)
    store.fail_on_write = 0
    start = threading.Barrier(THREADS)
    outcomes: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        try:
            result: object = store.next_out()
        except StoreIOError as exc:
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(o, StoreIOError) for o in outcomes), outcomes
    assert store.writes == []
    with pytest.raises(StoreIOError, match="refuses every call"):
        store.peek_out()
    store.close()  # close still works, writes nothing, releases
    assert store.released == 1 and store.writes == []
    with pytest.raises(StoreClosedError):
        store.next_out()


def test_a_failed_write_hands_out_no_number() -> None:
    store = RecordingStore()
    store.next_out()
    store.fail_on_write = 1
    with pytest.raises(StoreIOError):
        store.next_out()
    assert store.durable == (2, 1)
    with pytest.raises(StoreIOError):
        store.observed_in(1)


def test_reserve_writes_once_per_block_and_close_writes_the_exact_value() -> None:
    store = RecordingStore(reserve=10)
    handed = [store.next_out() for _ in range(25)]
    assert handed == list(range(1, 26))
    assert [w[0] for w in store.writes] == [11, 21, 31]
    store.observed_in(4)  # inbound is never reserved, and keeps the block
    assert store.writes[-1] == (31, 5)
    assert store.next_out() == 26 and len(store.writes) == 4
    store.close()
    assert store.writes[-1] == (27, 5)  # a clean close leaves no gap
    assert store.released == 1


def test_reserve_ends_at_an_exact_override() -> None:
    store = RecordingStore(reserve=100)
    store.next_out()
    assert store.durable[0] == 101
    store.set_next_out(50)
    assert store.durable[0] == 50
    assert store.next_out() == 50
    assert store.durable[0] == 150
    store.reset()
    assert store.durable == (1, 1)


def test_reserve_never_lets_the_durable_value_fall_behind() -> None:
    store = RecordingStore(reserve=7)
    for _ in range(100):
        n = store.next_out()
        assert n < store.durable[0] <= n + 7


@pytest.mark.parametrize("bad", [0, -3])
def test_reserve_below_one_is_rejected(bad: int) -> None:
    with pytest.raises(InvalidSeqNumError, match=r"^reserve must be in 1\.\.MAX_SEQ_NUM"):
        RecordingStore(reserve=bad)
    with pytest.raises(TypeError):
        RecordingStore(reserve=2.0)  # type: ignore[arg-type]


def test_close_covers_changes_still_queued() -> None:
    store = RecordingStore()
    with store._lock:  # a change applied in memory whose caller has not written yet
        store._change("next_out", 0)
    store.close()
    assert store.writes == [(2, 1)]


def test_async_twins_apply_on_the_loop_only_over_a_plain_single_writer_durable_core() -> None:
    from fixseq import MemorySeqStore
    from fixseq._twins import AsyncAdminShell

    class Shared(RecordingStore):
        _shared = True

    class OwnNextOut(RecordingStore):
        def next_out(self) -> int:
            return super().next_out()

    durable = RecordingStore()
    assert AsyncAdminShell(durable)._core is durable
    # A store whose backend does each change's I/O, or one with its own method,
    # keeps one worker-thread offload per call.
    assert AsyncAdminShell(Shared())._core is None
    assert AsyncAdminShell(OwnNextOut())._core is None
    assert AsyncAdminShell(MemorySeqStore())._core is None


@pytest.mark.anyio
async def test_async_callers_wait_for_the_write_and_share_it() -> None:
    import anyio

    from fixseq._twins import AsyncAdminShell

    store = RecordingStore(gate_first_write_until=8)
    twin = AsyncAdminShell(store)
    taken: list[int] = []

    async def take() -> None:
        n = await twin.next_out()
        assert store.durable[0] > n  # durable before it returned
        taken.append(n)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(take)
    assert sorted(taken) == list(range(1, 9))
    # The first write waited until all 8 had changed: it covers the tasks that
    # changed before it began (at least the first), one more covers the rest.
    assert 1 <= len(store.writes) <= 2
    await twin.observed_in(3)
    assert store.durable == (9, 4)
    await twin.aclose()
    assert store.released == 1


def test_a_reserved_block_never_reaches_past_the_last_number() -> None:
    store = RecordingStore(reserve=10)
    store.set_next_out(MAX_SEQ_NUM - 1)
    assert store.next_out() == MAX_SEQ_NUM - 1
    assert store.durable[0] == MAX_SEQ_NUM + 1  # not MAX_SEQ_NUM + 9: no store holds that
    assert store.next_out() == MAX_SEQ_NUM
    with pytest.raises(SeqNumExhaustedError):
        store.next_out()
    store.close()
    assert store.durable[0] == MAX_SEQ_NUM + 1
