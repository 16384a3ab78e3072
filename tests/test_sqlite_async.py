"""AsyncSqliteSeqStore under asyncio and trio: the sync store in worker threads."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest

from fixseq import (
    AsyncAdminSeqStore,
    AsyncSqliteSeqStore,
    SeqState,
    SeqStoreError,
    SqliteSeqStore,
    StoreClosedError,
    _sqlite,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

SESSION = "FIX.4.4:BANK->BROKER"


async def test_open_and_every_method(tmp_path: Path) -> None:
    db = tmp_path / "seq.db"
    async with await AsyncSqliteSeqStore.open(db, SESSION) as store:
        assert isinstance(store, AsyncAdminSeqStore)
        assert store.path == str(db) and store.session == SESSION
        assert store.synchronous == "FULL"
        assert [await store.next_out() for _ in range(3)] == [1, 2, 3]
        assert await store.peek_out() == 4
        await store.observed_in(9)
        assert await store.current_in() == 10
        await store.set_next_out(20)
        await store.set_next_in(30)
        assert await store.snapshot() == SeqState(20, 30)
        created = await store.creation_time()
        await store.reset()
        assert await store.snapshot() == SeqState(1, 1)
        assert await store.creation_time() > created
        await store.next_out()
    assert store.as_sync().closed
    with pytest.raises(StoreClosedError):
        await store.next_out()
    async with AsyncSqliteSeqStore(db, SESSION, create=False) as again:  # the sync constructor
        assert await again.snapshot() == SeqState(2, 1)


async def test_the_twins_share_one_connection_and_closed_state(tmp_path: Path) -> None:
    sync = SqliteSeqStore(tmp_path / "seq.db", SESSION)
    twin = sync.as_async()
    assert twin.as_sync() is sync
    assert await twin.next_out() == 1
    assert sync.next_out() == 2
    await twin.aclose()
    assert sync.closed


async def test_tasks_get_each_number_exactly_once(tmp_path: Path) -> None:
    store = await AsyncSqliteSeqStore.open(tmp_path / "seq.db", SESSION, synchronous="NORMAL")
    taken: list[int] = []

    async def take() -> None:
        for _ in range(25):
            taken.append(await store.next_out())

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(take)
    await store.aclose()
    assert sorted(taken) == list(range(1, 201))


async def test_the_database_is_used_off_the_event_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    original = SqliteSeqStore._apply

    def recording(self: SqliteSeqStore, op: str, seq_num: int) -> object:
        threads.add(threading.get_ident())
        return original(self, op, seq_num)

    monkeypatch.setattr(SqliteSeqStore, "_apply", recording)
    async with await AsyncSqliteSeqStore.open(tmp_path / "seq.db", SESSION) as store:
        await store.next_out()
        await store.observed_in(3)
        await store.snapshot()
    assert threads and loop_thread not in threads


async def test_a_waiting_call_leaves_the_event_loop_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While next_out() waits on the database, other tasks run: here they end its wait."""
    entered = threading.Event()
    release = threading.Event()
    original = SqliteSeqStore._apply

    def blocking(self: SqliteSeqStore, op: str, seq_num: int) -> object:
        if op == "next_out":
            entered.set()
            # A call on the loop's thread would wait here forever: nobody could set it.
            assert release.wait(30), "the event loop was blocked"
        return original(self, op, seq_num)

    monkeypatch.setattr(SqliteSeqStore, "_apply", blocking)
    async with await AsyncSqliteSeqStore.open(tmp_path / "seq.db", SESSION) as store:
        result: list[int] = []

        async def send() -> None:
            result.append(await store.next_out())

        async with anyio.create_task_group() as group:
            group.start_soon(send)
            # This task runs (and waits in another thread) while next_out() waits.
            assert await anyio.to_thread.run_sync(entered.wait, 30)
            release.set()
        assert result == [1]


async def test_a_cancelled_open_closes_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[SqliteSeqStore] = []
    original = SqliteSeqStore.__init__

    def recording(self: SqliteSeqStore, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(self)

    monkeypatch.setattr(SqliteSeqStore, "__init__", recording)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await AsyncSqliteSeqStore.open(tmp_path / "seq.db", SESSION)
        pytest.fail("the cancellation did not propagate")  # pragma: no cover
    assert len(opened) == 1 and opened[0].closed
    assert _sqlite.list_sessions(tmp_path / "seq.db") == [SESSION]


async def test_errors_come_through_the_twin(tmp_path: Path) -> None:
    with pytest.raises(SeqStoreError, match="does not exist"):
        await AsyncSqliteSeqStore.open(tmp_path / "missing.db", SESSION, create=False)
    with pytest.raises(ValueError, match="synchronous"):
        await AsyncSqliteSeqStore.open(tmp_path / "seq.db", SESSION, synchronous="LOUD")
    with pytest.raises(ValueError, match="empty"):
        await AsyncSqliteSeqStore.open(tmp_path / "seq.db", "")
