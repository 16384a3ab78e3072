"""Lost connections and a crashed server in the middle of a run of next_out calls.

The rule checked after every fault: each number next_out returned was committed (it is below
every number handed out after recovery) and no number is handed out twice. A call whose
connection died raises StoreIOError and returns nothing; the next call reconnects.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from postgres_support import (
    can_restart,
    drop_table,
    require_dsn,
    restart_server,
    terminate,
    unique,
    with_app_name,
)

from fixseq import SeqState, StoreIOError
from fixseq.postgres import PostgresSeqStore, create_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DEADLINE = 60.0  # seconds; every loop below stops by itself well before pytest's timeout


@pytest.fixture
def dsn() -> str:
    return require_dsn()


@pytest.fixture
def table(dsn: str) -> Iterator[str]:
    name = unique("fixseq_t")
    create_schema(dsn, table=name)
    yield name
    drop_table(dsn, name)


class Run:
    """next_out in a loop on this thread while another thread injects faults at set counts."""

    def __init__(self, store: PostgresSeqStore) -> None:
        self.store = store
        self.acked: list[int] = []
        self.errors = 0
        self.first_after_error: list[int] = []

    def go(self, fault: Callable[[], object], *, faults: int, every: int) -> None:
        want = threading.Event()
        done = threading.Event()
        injected: list[BaseException | None] = []

        def injector() -> None:
            for _ in range(faults):
                if not want.wait(DEADLINE):
                    return
                want.clear()
                try:
                    fault()
                except BaseException as exc:  # reported on the main thread
                    injected.append(exc)
                    return
                injected.append(None)
            done.set()

        thread = threading.Thread(target=injector)
        thread.start()
        start = time.monotonic()
        failed_last = False
        try:
            # Keep calling while the fault lands: it hits a call in flight or the next one.
            while len(self.acked) < every * (faults + 1) or not done.is_set():
                assert time.monotonic() - start < DEADLINE, "the run did not finish"
                assert not any(injected), injected
                try:
                    number = self.store.next_out()
                except StoreIOError:
                    self.errors += 1
                    failed_last = True
                    continue
                if failed_last:
                    self.first_after_error.append(number)
                    failed_last = False
                self.acked.append(number)
                if len(self.acked) % every == 0 and len(injected) < faults:
                    want.set()
        finally:
            want.set()
            thread.join(timeout=DEADLINE)
        assert injected == [None] * faults

    def check(self, dsn: str, table: str, session: str, *, most_lost: int) -> None:
        acked = self.acked
        print(f"{len(acked)} acked, {self.errors} errors, {acked[-1] - len(acked)} lost")
        assert self.errors >= 1, "no fault ever reached the store"
        assert len(set(acked)) == len(acked), "a number was handed out twice"
        assert acked == sorted(acked)  # so each number after recovery is above every acked one
        assert self.first_after_error, "the store never recovered after a fault"
        # Numbers lost to faults (committed, but the reply was lost): at most one per fault.
        assert acked[-1] - len(acked) <= most_lost
        with PostgresSeqStore(dsn, session, table=table, create=False) as fresh:
            assert fresh.peek_out() == acked[-1] + 1


def test_terminated_backend_mid_run(dsn: str, table: str) -> None:
    app, session, kills = unique("fixseq_kill"), unique("s"), 5
    with PostgresSeqStore(with_app_name(dsn, app), session, table=table) as store:
        run = Run(store)
        run.go(lambda: terminate(dsn, app), faults=kills, every=100)
        run.check(dsn, table, session, most_lost=kills)


def test_terminated_pooled_connection_mid_run(dsn: str, table: str) -> None:
    from psycopg_pool import ConnectionPool

    app, session, kills = unique("fixseq_kill"), unique("s"), 3
    with ConnectionPool(with_app_name(dsn, app), min_size=2, max_size=2, open=True) as pool:
        with PostgresSeqStore(pool, session, table=table) as store:
            run = Run(store)
            run.go(lambda: terminate(dsn, app), faults=kills, every=100)
            run.check(dsn, table, session, most_lost=kills * 2)


def test_server_crash_and_restart_mid_run(dsn: str, table: str) -> None:
    if not can_restart():
        pytest.skip("needs the server of scripts/pg-test-server.sh (FIXSEQ_PG_DATA) to restart")
    session, crashes = unique("s"), 2
    with PostgresSeqStore(dsn, session, table=table) as store:
        store.observed_in(41)
        created = store.creation_time()
        run = Run(store)
        run.go(restart_server, faults=crashes, every=150)
        run.check(dsn, table, session, most_lost=crashes)
        # Recovery replayed the WAL: the rest of the row survived the crashes too.
        assert store.current_in() == 42
        assert store.creation_time() == created


def test_creation_time_survives_a_reconnect(dsn: str, table: str) -> None:
    app = unique("fixseq_kill")
    with PostgresSeqStore(with_app_name(dsn, app), "s", table=table) as store:
        store.next_out()
        created = store.creation_time()
        assert terminate(dsn, app) == 1
        with pytest.raises(StoreIOError, match="next call reconnects"):
            store.next_out()
        assert store.creation_time() == created  # reconnected, same row, same time
        assert store.snapshot() in (SeqState(2, 1), SeqState(3, 1))
    with PostgresSeqStore(dsn, "s", table=table) as again:
        assert again.creation_time() == created


def test_interrupted_call_leaves_a_usable_store(
    dsn: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt mid-call drops the connection; the next call starts afresh."""
    import psycopg

    with PostgresSeqStore(dsn, "s", table=table) as store:
        assert store.next_out() == 1
        real = psycopg.Connection.execute
        calls = {"n": 0}

        def interrupted(self: psycopg.Connection[Any], *args: Any, **kw: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt
            return real(self, *args, **kw)

        monkeypatch.setattr(psycopg.Connection, "execute", interrupted)
        with pytest.raises(KeyboardInterrupt):
            store.next_out()
        monkeypatch.undo()
        assert store.next_out() == 2
