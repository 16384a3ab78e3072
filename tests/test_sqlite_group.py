"""SQLite group commit (stores of one database share commits) and outbound reservation."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING

import pytest
from group_support import watch

from fixseq import (
    MAX_SEQ_NUM,
    AsyncSqliteSeqStore,
    CorruptStoreError,
    SeqNumExhaustedError,
    SqliteSeqStore,
    StoreClosedError,
    StoreIOError,
    _sqlite,
)

if TYPE_CHECKING:
    from pathlib import Path

SESSION = "FIX.4.4:BANK->BROKER"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "seq.db")


def last_out(db: str, session: str = SESSION) -> int | None:
    """The session's stored last_out, read through a connection of its own."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT last_out FROM fixseq_sessions WHERE session = ?", (session,)
        ).fetchall()
    return int(rows[0][0]) if rows else None


def count_commits(store: SqliteSeqStore) -> list[str]:
    """Record every COMMIT the store's shared connection runs."""
    commits: list[str] = []
    store._database.conn.set_trace_callback(
        lambda sql: commits.append(sql) if sql == "COMMIT" else None
    )
    return commits


class HeldCommit:
    """The first commit waits until released; commit number ``fail_at`` fails (disk I/O)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int = 0) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.fail_at = fail_at
        real = _sqlite._commit

        def commit(cur: sqlite3.Cursor) -> None:
            self.calls += 1
            if self.calls == 1:
                self.entered.set()
                assert self.release.wait(timeout=60)
            if self.calls == self.fail_at:
                exc = sqlite3.OperationalError("disk I/O error")
                exc.sqlite_errorcode = 10  # type: ignore[attr-defined]
                raise exc
            real(cur)

        monkeypatch.setattr(_sqlite, "_commit", commit)


def run_held_group(
    held: HeldCommit, stores: list[SqliteSeqStore]
) -> tuple[object, dict[int, object]]:
    """stores[0].next_out() leads a commit held open while the others queue behind it."""
    outcomes: dict[int, object] = {}

    def call(index: int) -> None:
        try:
            outcomes[index] = stores[index].next_out()
        except BaseException as exc:
            outcomes[index] = exc

    queue = watch(stores[0]._database.batcher)
    threads = [threading.Thread(target=call, args=(0,))]
    threads[0].start()
    assert held.entered.wait(timeout=60)
    threads += [threading.Thread(target=call, args=(i,)) for i in range(1, len(stores))]
    for thread in threads[1:]:
        thread.start()
    queue.wait_for(len(stores) - 1)
    held.release.set()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes.pop(0), outcomes


# -- group commit ---------------------------------------------------------------------------


def test_stores_of_one_database_share_one_connection_until_the_last_closes(db: str) -> None:
    a = SqliteSeqStore(db, "A")
    b = SqliteSeqStore(db, "B")
    other = SqliteSeqStore(db, "C", synchronous="NORMAL")  # another PRAGMA: its own connection
    assert a._database is b._database is not other._database
    a.close()
    assert b.next_out() == 1  # the connection outlives a's close
    database = b._database
    b.close()
    other.close()
    with pytest.raises(sqlite3.ProgrammingError):
        database.conn.execute("SELECT 1")  # the last store closed it
    with SqliteSeqStore(db, "A") as again:
        assert again._database is not database
        assert again.next_out() == 1


def test_a_lone_call_is_committed_before_it_returns(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        commits = count_commits(store)
        for expected in (1, 2, 3):
            assert store.next_out() == expected
            assert last_out(db) == expected  # another connection sees it at once
        assert len(commits) == 3


def test_calls_queued_behind_a_commit_share_the_next_one(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [SqliteSeqStore(db, f"S{i}") for i in range(16)]
    held = HeldCommit(monkeypatch)
    try:
        commits = count_commits(stores[0])
        first, rest = run_held_group(held, stores)
        assert first == 1 and rest == {i: 1 for i in range(1, 16)}
        assert len(commits) == 2  # the leader's, then one for the fifteen queued behind it
        assert all(last_out(db, f"S{i}") == 1 for i in range(16))
    finally:
        for store in stores:
            store.close()


def test_a_failed_commit_fails_every_call_of_its_group_and_stores_none(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [SqliteSeqStore(db, f"S{i}") for i in range(6)]
    held = HeldCommit(monkeypatch, fail_at=2)
    try:
        first, rest = run_held_group(held, stores)
        assert first == 1  # the leader's own commit went through
        assert all(isinstance(outcome, StoreIOError) for outcome in rest.values()), rest
        assert [last_out(db, f"S{i}") for i in range(6)] == [1, 0, 0, 0, 0, 0]
        assert not stores[0]._database.conn.in_transaction  # rolled back
        assert [store.next_out() for store in stores] == [2, 1, 1, 1, 1, 1]  # not stopped
    finally:
        for store in stores:
            store.close()


def test_a_call_whose_row_vanished_fails_alone_and_the_rest_of_its_group_commits(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [SqliteSeqStore(db, f"S{i}") for i in range(5)]
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM fixseq_sessions WHERE session = 'S3'")
    held = HeldCommit(monkeypatch)
    try:
        first, rest = run_held_group(held, stores)
        assert first == 1
        assert isinstance(rest.pop(3), CorruptStoreError)
        assert rest == {1: 1, 2: 1, 4: 1}
        assert [last_out(db, f"S{i}") for i in range(5)] == [1, 1, 1, None, 1]
    finally:
        for store in stores:
            store.close()


def test_sixteen_threads_on_sixteen_sessions_get_exact_numbers_in_fewer_commits(
    db: str,
) -> None:
    stores = [SqliteSeqStore(db, f"S{i}", synchronous="NORMAL") for i in range(16)]
    commits = count_commits(stores[0])
    barrier = threading.Barrier(16)
    got: dict[int, list[int]] = {}

    def work(index: int) -> None:
        barrier.wait(timeout=60)
        got[index] = [stores[index].next_out() for _ in range(100)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert got == {i: list(range(1, 101)) for i in range(16)}
        assert all(last_out(db, f"S{i}") == 100 for i in range(16))
        assert len(commits) < 1600  # groups formed (in practice a few hundred commits)
    finally:
        for store in stores:
            store.close()


def test_close_waits_for_a_call_in_flight(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteSeqStore(db, SESSION)
    held = HeldCommit(monkeypatch)
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(store.next_out()))
    caller.start()
    assert held.entered.wait(timeout=60)
    closer = threading.Thread(target=store.close)
    closer.start()
    held.release.set()
    caller.join(timeout=60)
    closer.join(timeout=60)
    assert result == [1]
    assert last_out(db) == 1
    with pytest.raises(StoreClosedError):
        store.next_out()


# -- reservation ------------------------------------------------------------------------------


def test_a_reservation_stores_the_block_end_once_and_close_gives_back_the_rest(db: str) -> None:
    store = SqliteSeqStore(db, SESSION, reserve=10)
    commits = count_commits(store)
    assert [store.next_out() for _ in range(3)] == [1, 2, 3]
    assert len(commits) == 1 and last_out(db) == 10  # one commit for the block
    assert store.peek_out() == 4 and store.snapshot().next_out == 4
    store.observed_in(7)  # inbound is never reserved: stored exactly, at once
    assert store.current_in() == 8
    store.close()
    assert last_out(db) == 3  # a clean close: no gap
    with SqliteSeqStore(db, SESSION, create=False) as again:
        assert again.snapshot() == (4, 8)


def test_after_a_crash_the_session_resumes_above_the_block(db: str) -> None:
    crashed = SqliteSeqStore(db, SESSION, reserve=10)  # never closed: as if killed
    assert [crashed.next_out() for _ in range(3)] == [1, 2, 3]
    with SqliteSeqStore(db, SESSION) as after:
        assert after.next_out() == 11  # a gap of 7 (at most 10), never a reused number
    crashed.close()  # someone advanced past the block: compare-and-set leaves it alone
    assert last_out(db) == 11


def test_set_next_out_and_reset_end_the_block_exactly(db: str) -> None:
    with SqliteSeqStore(db, SESSION, reserve=10) as store:
        assert store.next_out() == 1
        store.set_next_out(5)
        assert last_out(db) == 4 and store.peek_out() == 5
        assert store.next_out() == 5 and last_out(db) == 14
        store.reset()
        assert last_out(db) == 0 and store.peek_out() == 1
        assert store.next_out() == 1 and last_out(db) == 10
    assert last_out(db) == 1


def test_a_reservation_near_the_limit_takes_what_is_left(db: str) -> None:
    with SqliteSeqStore(db, SESSION, reserve=10) as store:
        store.set_next_out(MAX_SEQ_NUM - 1)
        assert store.next_out() == MAX_SEQ_NUM - 1
        assert store.next_out() == MAX_SEQ_NUM
        with pytest.raises(SeqNumExhaustedError):
            store.next_out()
        assert store.peek_out() == MAX_SEQ_NUM + 1


def test_threads_on_one_reserving_store_get_every_number_once(db: str) -> None:
    with SqliteSeqStore(db, SESSION, reserve=7) as store:
        barrier = threading.Barrier(8)
        got: list[list[int]] = []

        def work() -> None:
            barrier.wait(timeout=60)
            got.append([store.next_out() for _ in range(50)])

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert sorted(n for numbers in got for n in numbers) == list(range(1, 401))
    assert last_out(db) == 400


@pytest.mark.parametrize(
    ("reserve", "error"), [(0, ValueError), (-3, ValueError), ("2", TypeError), (True, TypeError)]
)
def test_a_bad_reserve_is_refused_and_opens_nothing(db: str, reserve: object, error: type) -> None:
    with pytest.raises(error, match="reserve"):
        SqliteSeqStore(db, SESSION, reserve=reserve)  # type: ignore[arg-type]
    with pytest.raises(error, match="reserve"):
        AsyncSqliteSeqStore(db, SESSION, reserve=reserve)  # type: ignore[arg-type]
    assert not _sqlite._DATABASES


@pytest.mark.anyio
async def test_the_async_twin_reserves_too(db: str) -> None:
    store = await AsyncSqliteSeqStore.open(db, SESSION, reserve=5)
    assert [await store.next_out() for _ in range(2)] == [1, 2]
    assert last_out(db) == 5
    await store.aclose()
    assert last_out(db) == 2


def test_close_during_a_reserving_call_gives_back_the_new_block(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteSeqStore(db, SESSION, reserve=10)
    held = HeldCommit(monkeypatch)
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(store.next_out()))
    caller.start()
    assert held.entered.wait(timeout=60)  # the block's commit is in flight
    closer = threading.Thread(target=store.close)
    closer.start()
    held.release.set()
    caller.join(timeout=60)
    closer.join(timeout=60)
    assert result == [1]
    assert last_out(db) == 1  # close saw the block the call installed, and gave back 2..10


@pytest.mark.anyio
async def test_async_tasks_join_the_same_groups(db: str) -> None:
    import anyio

    stores = [await AsyncSqliteSeqStore.open(db, f"S{i}") for i in range(16)]
    commits = count_commits(stores[0].as_sync())
    got: dict[int, list[int]] = {}

    async def work(index: int) -> None:
        got[index] = [await stores[index].next_out() for _ in range(20)]

    async with anyio.create_task_group() as tg:
        for index in range(16):
            tg.start_soon(work, index)
    assert got == {i: list(range(1, 21)) for i in range(16)}
    assert len(commits) < 320  # the worker threads' calls met in groups
    for store in stores:
        await store.aclose()
