"""A store holding a reserve=K block follows a live ``fixseq set`` / ``reset`` (issue 15, item 3).

The rule: once ``fixseq set URL --next-out N`` (a real second process) has
returned, every number the running store hands out in a call that begins after
it is at least N, and no number is handed out twice; after a live ``reset`` the
store continues from the row (1, 2, ...) and still hands out no number twice.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
from psycopg.conninfo import conninfo_to_dict

from fixseq import SeqCounters
from fixseq import postgres as pg
from fixseq._sqlite import AsyncSqliteSeqStore, SqliteSeqStore

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from fixseq._protocols import SeqStore

SESSION = "FIX.4.4:BANK->BROKER"


class Target:
    """One store kind: how to open it with a reserve, and its URL for the CLI."""

    def __init__(self, url: str, open_: Callable[[int], SeqCounters], env: dict[str, str]) -> None:
        self.url = url
        self.open = open_
        self.env = env

    def cli(self, *args: str) -> None:
        """Run ``fixseq ARGS URL`` in a second process; return once it has."""
        done = subprocess.run(
            [sys.executable, "-m", "fixseq", args[0], self.url, *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, child_env: dict[str, str]
) -> Iterator[Target]:
    if request.param == "sqlite":
        db = str(tmp_path / "seq.db")
        SqliteSeqStore(db, SESSION).close()  # an existing store: set creates nothing

        def open_sqlite(reserve: int) -> SeqCounters:
            return SqliteSeqStore(db, SESSION, reserve=reserve)

        yield Target(f"sqlite:{db}?session={SESSION}", open_sqlite, child_env)
        return
    from postgres_support import drop_table, require_dsn, unique

    dsn = require_dsn()
    table = unique("fixseq_live")
    pg.create_schema(dsn, table=table)
    pg.PostgresSeqStore(dsn, SESSION, table=table).close()
    info = conninfo_to_dict(dsn)
    env = dict(child_env)
    env["PGPASSWORD"] = str(info.get("password", ""))
    url = (
        f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
        f"?session={SESSION}&table={table}"
    )

    def open_pg(reserve: int) -> SeqCounters:
        return pg.PostgresSeqStore(dsn, SESSION, table=table, reserve=reserve)

    yield Target(url, open_pg, env)
    drop_table(dsn, table)


def take(store: SeqStore, count: int) -> list[int]:
    return [store.next_out() for _ in range(count)]


@pytest.mark.parametrize("above", [True, False], ids=["above-block", "inside-block"])
def test_live_set_next_out_is_followed(target: Target, above: bool) -> None:
    with target.open(100) as store:
        before = take(store, 10)  # 1..10, the block reaches 100
        assert before == list(range(1, 11))
        new_next = 1005 if above else 50
        target.cli("set", "--next-out", str(new_next))
        assert store.peek_out() == new_next  # a read does not report the dropped block
        after = take(store, 150)
        assert min(after) >= new_next, after[:5]
        assert after[0] == new_next
        assert len(set(before + after)) == len(before) + len(after)
        assert store.peek_out() == after[-1] + 1


def test_live_set_to_the_stored_value_is_followed(target: Target) -> None:
    # The row already says next_out = 101 (our block's end): the set changes no
    # value, yet our unused numbers 11..100 are below what the operator asked for.
    with target.open(100) as store:
        take(store, 10)
        target.cli("set", "--next-out", "101")
        after = take(store, 20)
        assert after == list(range(101, 121))


def test_live_set_to_the_stored_value_then_close_gives_nothing_back(target: Target) -> None:
    store = target.open(100)
    take(store, 10)
    target.cli("set", "--next-out", "101")
    store.close()  # must not give 11..100 back over the operator's 101
    with target.open(1) as again:
        assert again.next_out() == 101


def test_live_set_next_in_is_followed(target: Target) -> None:
    with target.open(100) as store:
        take(store, 5)
        store.observed_in(7)
        target.cli("set", "--next-in", "500")
        assert store.current_in() == 500
        store.observed_in(500)
        assert store.current_in() == 501
        assert store.next_out() == 6  # the outbound block is untouched by an inbound set


def test_live_reset_continues_from_the_row(target: Target) -> None:
    with target.open(100) as store:
        before = take(store, 10)
        target.cli("reset", "--yes")
        after = take(store, 150)
        assert after == list(range(1, 151))
        # Across the reset the numbers repeat by the operator's will; after it, never.
        assert len(set(after)) == len(after)
        assert before == list(range(1, 11))
    with target.open(1) as again:
        assert again.next_out() == 151  # the last block's unused numbers were given back


def test_live_set_with_threads(target: Target) -> None:
    store = target.open(100)
    taken: list[list[int]] = [[] for _ in range(4)]
    set_done = threading.Event()
    after_set: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    started = threading.Barrier(5)

    def worker(index: int) -> None:
        try:
            started.wait(timeout=30)
            # Bounded: a few hundred calls that began after the set returned.
            while len(after_set[index]) < 300 and len(taken[index]) < 2_000_000:
                begun_after = set_done.is_set()
                number = store.next_out()
                taken[index].append(number)
                if begun_after:
                    after_set[index].append(number)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    started.wait(timeout=30)
    target.cli("set", "--next-out", str(10**9))
    set_done.set()
    for thread in threads:
        thread.join(timeout=120)
    store.close()
    assert not errors
    everything = [n for numbers in taken for n in numbers]
    assert len(set(everything)) == len(everything)
    late = [n for numbers in after_set for n in numbers]
    assert len(late) == 1200
    assert min(late) >= 10**9


@pytest.mark.anyio
async def test_async_twin_follows_a_live_set(tmp_path: Path, child_env: dict[str, str]) -> None:
    db = str(tmp_path / "seq.db")
    SqliteSeqStore(db, SESSION).close()
    url = f"sqlite:{db}?session={SESSION}"
    target = Target(url, lambda reserve: SqliteSeqStore(db, SESSION, reserve=reserve), child_env)
    store = await AsyncSqliteSeqStore.open(db, SESSION, reserve=100)
    try:
        assert [await store.next_out() for _ in range(10)] == list(range(1, 11))
        target.cli("set", "--next-out", "700")
        assert [await store.next_out() for _ in range(5)] == list(range(700, 705))
        target.cli("reset", "--yes")
        assert [await store.next_out() for _ in range(5)] == list(range(1, 6))
    finally:
        await store.aclose()


class _RowStore(SeqCounters):
    """A shared store over a dict "row" that does not override _block_moved."""

    _shared = True

    def __init__(self) -> None:
        super().__init__()
        self.row = [0, 0]  # last_out, last_in
        self.calls = 0
        self._set_reserve(10)

    def _apply(self, op: str, seq_num: int) -> tuple[int, int, datetime.datetime] | None:
        self.calls += 1
        if op == "next_out":
            self.row[0] += seq_num
        elif op == "set_next_out":
            self.row[0] = seq_num - 1
        return self.row[0] + 1, self.row[1] + 1, self._created

    def _give_back(self, reserved_end: int, next_out: int) -> None:
        if self.row[0] == reserved_end - 1:
            self.row[0] = next_out - 1


def test_a_shared_store_that_cannot_tell_trusts_no_block() -> None:
    store = _RowStore()
    assert store.next_out() == 1
    store.row[0] = 499  # a live set by "another process", unseen without the hook
    assert store.next_out() == 500
    assert store.row[0] == 509  # reserved again from the row
    store.close()
    assert store.row[0] == 500
