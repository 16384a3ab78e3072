"""PostgreSQL group commit (shared statements and round trips) and outbound reservation."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

import psycopg
import pytest
from group_support import watch
from postgres_support import admin, drop_table, require_dsn, row_of, unique
from psycopg import sql

from fixseq import MAX_SEQ_NUM, CorruptStoreError, SeqNumExhaustedError, StoreIOError
from fixseq import postgres as pg
from fixseq.postgres import AsyncPostgresSeqStore, PostgresSeqStore, create_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from psycopg_pool import ConnectionPool


@pytest.fixture
def dsn() -> str:
    return require_dsn()


@pytest.fixture
def table(dsn: str) -> Iterator[str]:
    name = unique("fixseq_g")
    create_schema(dsn, table=name)
    yield name
    drop_table(dsn, name)


@pytest.fixture
def pool(dsn: str) -> Iterator[ConnectionPool[Any]]:
    from psycopg_pool import ConnectionPool

    with ConnectionPool(dsn, min_size=1, max_size=4, open=True, kwargs={"autocommit": True}) as p:
        yield p


class HeldGroup:
    """The first group waits until released; group number ``fail_at`` fails (connection)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int = 0) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.groups: list[int] = []
        real = pg._group_on

        def group_on(cur: psycopg.Cursor[Any], items: Sequence[Any]) -> Any:
            self.groups.append(len(items))
            if len(self.groups) == 1:
                self.entered.set()
                assert self.release.wait(timeout=60)
            if len(self.groups) == fail_at:
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return real(cur, items)

        monkeypatch.setattr(pg, "_group_on", group_on)

    def run(
        self, lead: Callable[[], object], calls: list[Callable[[], object]], store: PostgresSeqStore
    ) -> tuple[object, list[object]]:
        """``lead()`` runs a group held open while every call of ``calls`` queues behind it."""
        queue = watch(store._batcher)
        outcomes: dict[int, object] = {}

        def call(index: int, func: Callable[[], object]) -> None:
            try:
                outcomes[index] = func()
            except BaseException as exc:
                outcomes[index] = exc

        threads = [threading.Thread(target=call, args=(-1, lead))]
        threads[0].start()
        assert self.entered.wait(timeout=60)
        threads += [threading.Thread(target=call, args=(i, f)) for i, f in enumerate(calls)]
        for thread in threads[1:]:
            thread.start()
        queue.wait_for(len(calls))
        self.release.set()
        for thread in threads:
            thread.join(timeout=60)
        return outcomes.pop(-1), [outcomes[i] for i in range(len(calls))]


# -- group commit ---------------------------------------------------------------------------


def test_a_lone_call_is_committed_before_it_returns(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "s", table=table) as store:
        for expected in (1, 2, 3):
            assert store.next_out() == expected
            assert row_of(dsn, table, "s") == (expected, 0)  # another connection sees it
        assert store._batcher.batches == 3


def test_next_out_calls_queued_on_one_session_share_one_statement(
    dsn: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldGroup(monkeypatch)
    with PostgresSeqStore(dsn, "s", table=table) as store:
        first, rest = held.run(store.next_out, [store.next_out] * 7, store)
        assert first == 1
        assert sorted(cast("list[int]", rest)) == list(range(2, 9))  # each its own number
        assert held.groups == [1, 7]
        assert row_of(dsn, table, "s") == (8, 0)


def test_a_mixed_group_on_a_pool_runs_as_one_transaction(
    dsn: str, table: str, pool: ConnectionPool[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldGroup(monkeypatch)
    a = PostgresSeqStore(pool, "a", table=table)
    b = PostgresSeqStore(pool, "b", table=table)
    assert a._batcher is b._batcher  # stores sharing a pool share their groups
    calls: list[Callable[[], object]] = [
        a.next_out,
        b.next_out,
        lambda: a.observed_in(10),
        b.peek_out,
        a.next_out,
        lambda: b.set_next_in(50),
    ]
    first, rest = held.run(a.next_out, calls, a)
    assert first == 1
    assert {rest[0], rest[4]} == {2, 3} and rest[1] == 1
    assert rest[2] is None and rest[3] in (1, 2) and rest[5] is None
    assert held.groups == [1, 6]
    assert row_of(dsn, table, "a") == (3, 10)
    assert row_of(dsn, table, "b") == (1, 49)
    a.close()
    b.close()


def test_a_failed_group_fails_every_call_in_it(
    dsn: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldGroup(monkeypatch, fail_at=2)
    with PostgresSeqStore(dsn, "s", table=table) as store:
        first, rest = held.run(store.next_out, [store.next_out] * 5, store)
        assert first == 1
        assert all(isinstance(outcome, StoreIOError) for outcome in rest), rest
        assert row_of(dsn, table, "s") == (1, 0)
        assert store.next_out() == 2  # not stopped


def test_a_call_whose_row_vanished_fails_alone(
    dsn: str, table: str, pool: ConnectionPool[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [PostgresSeqStore(pool, f"s{i}", table=table) for i in range(4)]
    with admin(dsn) as conn:
        conn.execute(sql.SQL("DELETE FROM {} WHERE session = 's2'").format(sql.Identifier(table)))
    held = HeldGroup(monkeypatch)
    first, rest = held.run(stores[0].next_out, [s.next_out for s in stores[1:]], stores[0])
    assert first == 1
    assert rest[0] == 1 and isinstance(rest[1], CorruptStoreError) and rest[2] == 1
    assert [row_of(dsn, table, f"s{i}") for i in range(4)] == [(1, 0), (1, 0), None, (1, 0)]
    for store in stores:
        store.close()


def test_eight_threads_on_one_session_get_exact_numbers_in_fewer_round_trips(
    dsn: str, table: str
) -> None:
    with PostgresSeqStore(dsn, "s", table=table) as store:
        barrier = threading.Barrier(8)
        got: list[list[int]] = []

        def work() -> None:
            barrier.wait(timeout=60)
            got.append([store.next_out() for _ in range(100)])

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert all(numbers == sorted(numbers) for numbers in got)
        assert sorted(n for numbers in got for n in numbers) == list(range(1, 801))
        assert store._batcher.batches < 800
    assert row_of(dsn, table, "s") == (800, 0)


def test_close_waits_for_a_call_in_flight(
    dsn: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldGroup(monkeypatch)
    store = PostgresSeqStore(dsn, "s", table=table)
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(store.next_out()))
    caller.start()
    assert held.entered.wait(timeout=60)
    closer = threading.Thread(target=store.close)
    closer.start()
    held.release.set()
    caller.join(timeout=60)
    closer.join(timeout=60)
    assert result == [1] and store.closed and store._conn is None
    assert row_of(dsn, table, "s") == (1, 0)


# -- reservation ------------------------------------------------------------------------------


def test_a_reservation_stores_the_block_end_once_and_close_gives_back_the_rest(
    dsn: str, table: str
) -> None:
    store = PostgresSeqStore(dsn, "s", table=table, reserve=10)
    assert [store.next_out() for _ in range(3)] == [1, 2, 3]
    # One write (the reservation); numbers 2 and 3 each cost one read of the row
    # (is the block still ours after a live set or reset?), never a commit.
    assert store._batcher.batches == 3 and row_of(dsn, table, "s") == (10, 0)
    assert store.peek_out() == 4 and store.snapshot().next_out == 4
    store.observed_in(7)  # never reserved
    assert row_of(dsn, table, "s") == (10, 7)
    store.close()
    assert row_of(dsn, table, "s") == (3, 7)


def test_after_a_crash_the_session_resumes_above_the_block(dsn: str, table: str) -> None:
    crashed = PostgresSeqStore(dsn, "s", table=table, reserve=10)  # as if killed: not closed
    assert [crashed.next_out() for _ in range(3)] == [1, 2, 3]
    with PostgresSeqStore(dsn, "s", table=table) as after:
        assert after.next_out() == 11
    crashed.close()  # compare-and-set: someone advanced past the block, leave it
    assert row_of(dsn, table, "s") == (11, 0)


def test_set_next_out_and_reset_end_the_block_and_the_limit_is_kept(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "s", table=table, reserve=10) as store:
        assert store.next_out() == 1
        store.set_next_out(5)
        assert row_of(dsn, table, "s") == (4, 0)
        assert store.next_out() == 5 and row_of(dsn, table, "s") == (14, 0)
        store.reset()
        assert store.next_out() == 1 and row_of(dsn, table, "s") == (10, 0)
        store.set_next_out(MAX_SEQ_NUM - 1)
        assert [store.next_out(), store.next_out()] == [MAX_SEQ_NUM - 1, MAX_SEQ_NUM]
        with pytest.raises(SeqNumExhaustedError):
            store.next_out()


@pytest.mark.parametrize(("reserve", "error"), [(0, ValueError), ("3", TypeError)])
def test_a_bad_reserve_is_refused(dsn: str, table: str, reserve: object, error: type) -> None:
    with pytest.raises(error, match="reserve"):
        PostgresSeqStore(dsn, "s", table=table, reserve=reserve)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_the_async_twin_reserves_too(dsn: str, table: str) -> None:
    store = await AsyncPostgresSeqStore.open(dsn, "s", table=table, reserve=5)
    assert [await store.next_out() for _ in range(2)] == [1, 2]
    assert row_of(dsn, table, "s") == (5, 0)
    await store.aclose()
    assert row_of(dsn, table, "s") == (2, 0)
