"""A store used in a process other than the one that opened it (after ``fork()``).

Every store, every ``reserve``, sync and async twin: each call in the child raises
`StoreForkedError` naming both pids, ``close()`` in the child writes and releases nothing,
and the parent carries on with unique numbers, its lock and its connection intact. Real
``os.fork()`` (the child reports through a pipe and leaves with ``os._exit``) and
``multiprocessing`` with the "fork" start method.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import sqlite3
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from postgres_support import drop_table, row_of, unique

from fixseq import (
    FileSeqStore,
    MemorySeqStore,
    SeqCounters,
    SeqStoreError,
    SqliteSeqStore,
    StoreForkedError,
    StoreLockedError,
)
from fixseq import errors as fixseq_errors
from fixseq._file import read_file_state

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork() is POSIX")

SESSION = "FIX.4.4:BANK->BROKER"
CHILD_TIMEOUT = 60.0

Report = dict[str, Any]


def in_fork(child: Callable[[], Report]) -> Report:
    """Run ``child`` in a process made by ``os.fork()``; return what it reported."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave at once (no atexit, no pytest teardown)
        code = 0
        try:
            os.close(read_end)
            report = child()
        except BaseException as exc:  # reported to the parent
            report = {"crashed": f"{type(exc).__name__}: {exc}"}
            code = 1
        try:
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], CHILD_TIMEOUT)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked child hung (a lock inherited from the parent?)")
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    reported: Report = json.loads(b"".join(chunks))
    assert "crashed" not in reported, reported["crashed"]
    return reported


def _mp_child(child: Callable[[], Report], conn: Any) -> None:
    try:
        report = child()
    except BaseException as exc:  # reported to the parent
        report = {"crashed": f"{type(exc).__name__}: {exc}"}
    conn.send(json.dumps(report))
    conn.close()


def in_multiprocessing(child: Callable[[], Report]) -> Report:
    """Run ``child`` in a ``multiprocessing`` process with the "fork" start method."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_mp_child, args=(child, sender))
    process.start()
    sender.close()
    try:
        if not receiver.poll(CHILD_TIMEOUT):
            process.kill()
            pytest.fail("the multiprocessing child hung")
        report: Report = json.loads(receiver.recv())
    finally:
        receiver.close()
        process.join(CHILD_TIMEOUT)
    assert process.exitcode == 0
    assert "crashed" not in report, report["crashed"]
    return report


RUNNERS = {"os.fork": in_fork, "multiprocessing": in_multiprocessing}


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except BaseException as exc:  # the child reports every outcome
        return f"{type(exc).__name__}: {exc}"
    return "returned"


def probe(store: Any) -> Report:
    """Every call of the store and of its async twin, then close(), in the child."""
    twin = store.as_async()
    calls: dict[str, Callable[[], object]] = {
        "next_out": store.next_out,
        "peek_out": store.peek_out,
        "observed_in": lambda: store.observed_in(50),
        "current_in": store.current_in,
        "snapshot": store.snapshot,
        "creation_time": store.creation_time,
        "set_next_out": lambda: store.set_next_out(3),
        "set_next_in": lambda: store.set_next_in(3),
        "reset": store.reset,
        "async next_out": lambda: anyio.run(twin.next_out),
        "async peek_out": lambda: anyio.run(twin.peek_out),
        "async observed_in": lambda: anyio.run(twin.observed_in, 50),
        "async snapshot": lambda: anyio.run(twin.snapshot),
        "async set_next_out": lambda: anyio.run(twin.set_next_out, 3),
        "async reset": lambda: anyio.run(twin.reset),
    }
    outcomes = {name: outcome(call) for name, call in calls.items()}
    closed = outcome(store.close)
    outcomes["next_out after close"] = outcome(store.next_out)
    return {"pid": os.getpid(), "calls": outcomes, "close": closed}


# -- the stores, and what each holds outside this process ---------------------------------


class Kind:
    """Opens one kind of store and reads its durable state past the store."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.path = tmp_path / ("bank.seq" if name == "file" else "fix.db")
        self.table = ""
        self.dsn = ""
        if name == "postgres":
            from postgres_support import require_dsn

            self.dsn = require_dsn()
            self.table = unique("fixseq_fork")

    def open(self, reserve: int) -> SeqCounters:
        if self.name == "memory":
            return MemorySeqStore()
        if self.name == "file":
            return FileSeqStore(self.path, reserve=reserve)
        if self.name == "sqlite":
            return SqliteSeqStore(self.path, SESSION, reserve=reserve)
        from fixseq.postgres import PostgresSeqStore

        return PostgresSeqStore(self.dsn, SESSION, table=self.table, reserve=reserve)

    def durable_state(self) -> object:
        """The bytes or the row the store keeps (None for the memory store)."""
        if self.name == "file":
            return self.path.read_bytes()
        if self.name == "sqlite":
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                query = "SELECT last_out, last_in, created FROM fixseq_sessions WHERE session = ?"
                return conn.execute(query, (SESSION,)).fetchall()
            finally:
                conn.close()
        if self.name == "postgres":
            return row_of(self.dsn, self.table, SESSION)
        return None

    def cleanup(self) -> None:
        if self.table:
            drop_table(self.dsn, self.table)


@pytest.fixture(params=["memory", "file", "sqlite", "postgres"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    made = Kind(str(request.param), tmp_path)
    yield made
    made.cleanup()


def assert_forked_error(text: str, parent: int, child: int) -> None:
    assert text.startswith("StoreForkedError: "), text
    assert f"process {parent}" in text and f"process {child}" in text, text
    assert "open a new store in this process" in text, text


# -- the tests ------------------------------------------------------------------------------


def test_the_error_is_a_seq_store_error_and_a_runtime_error() -> None:
    assert issubclass(StoreForkedError, SeqStoreError)
    assert issubclass(StoreForkedError, RuntimeError)
    assert fixseq_errors.StoreForkedError is StoreForkedError
    assert "StoreForkedError" in (fixseq_errors.__doc__ or "")


def test_a_forked_helper_that_only_closes_a_reserving_file_store_reuses_nothing(
    tmp_path: Path,
) -> None:
    # The scenario: a forked helper closes its inherited reserve=100 store; the
    # parent hands out 40 more numbers from its block and then crashes. The file must
    # still say the parent's next number is past all 50.
    path = tmp_path / "bank.seq"
    store = FileSeqStore(path, reserve=100)
    try:
        handed = [store.next_out() for _ in range(10)]
        before = path.read_bytes()
        report = in_fork(lambda: {"close": outcome(store.close)})
        assert report["close"] == "returned"
        assert path.read_bytes() == before  # the child wrote nothing
        handed += [store.next_out() for _ in range(40)]
        assert handed == list(range(1, 51))
        # A crash now (no close): a new opener resumes from what the file holds.
        assert read_file_state(path).state.next_out > max(handed)
    finally:
        store.close()


@pytest.mark.parametrize("reserve", [1, 100])
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_every_call_in_the_child_raises_and_the_parent_carries_on(
    kind: Kind, reserve: int, runner: str
) -> None:
    store = kind.open(reserve)
    try:
        assert [store.next_out() for _ in range(5)] == [1, 2, 3, 4, 5]
        store.observed_in(7)
        before = kind.durable_state()
        parent = os.getpid()
        report = RUNNERS[runner](lambda: probe(store))
        child = report["pid"]
        assert child != parent
        for name, text in report["calls"].items():
            assert name and text
            assert_forked_error(text, parent, child)
        assert report["close"] == "returned"
        # The child's calls and its close() wrote nothing.
        assert kind.durable_state() == before
        # The parent carries on: unique numbers, its lock held, its connection working.
        assert [store.next_out() for _ in range(3)] == [6, 7, 8]
        store.observed_in(9)
        assert store.snapshot() == (9, 10)
        assert not store.closed
        if kind.name == "file":
            with pytest.raises(StoreLockedError):
                FileSeqStore(kind.path)
    finally:
        store.close()
    if kind.name != "memory":
        with kind.open(reserve) as again:
            assert again.next_out() == 9  # the parent's clean close wrote the exact value


def test_a_store_closed_before_the_fork_stays_closed_in_the_child(tmp_path: Path) -> None:
    store = FileSeqStore(tmp_path / "bank.seq")
    store.close()
    report = in_fork(lambda: {"next_out": outcome(store.next_out)})
    assert report["next_out"].startswith("StoreClosedError: ")


def test_a_lock_held_by_a_parent_thread_at_the_fork_does_not_hang_the_child(
    tmp_path: Path,
) -> None:
    store = FileSeqStore(tmp_path / "bank.seq", reserve=10)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            holding.set()
            release.wait(CHILD_TIMEOUT)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(CHILD_TIMEOUT)
        report = in_fork(lambda: probe(store))
    finally:
        release.set()
        thread.join()
    assert report["calls"]["next_out"].startswith("StoreForkedError: ")
    assert report["close"] == "returned"
    with store:
        assert store.next_out() == 1


def test_a_grandchild_names_the_opener_and_itself(tmp_path: Path) -> None:
    store = MemorySeqStore()
    parent = os.getpid()

    def child() -> Report:
        return in_fork(lambda: {"pid": os.getpid(), "next_out": outcome(store.next_out)})

    report = in_fork(child)
    assert_forked_error(report["next_out"], parent, report["pid"])
    assert store.next_out() == 1


SHUTDOWN_SCRIPT = """
import gc, os, sys
from fixseq import SqliteSeqStore
store = SqliteSeqStore(sys.argv[1], "s", reserve=int(sys.argv[2]))
first = [store.next_out() for _ in range(3)]
pid = os.fork()
if pid == 0:
    store.close()
    del store
    gc.collect()
    sys.exit(0)  # the child's interpreter shuts down in full: modules cleared, gc run
os.waitpid(pid, 0)
assert os.path.exists(sys.argv[1] + "-wal"), "the child removed the parent's -wal"
print(*first, *[store.next_out() for _ in range(3)])
os._exit(0)  # the parent crashes: no close, no checkpoint
"""


@pytest.mark.parametrize("reserve", [1, 100])
def test_a_child_exiting_normally_frees_no_inherited_sqlite_connection(
    tmp_path: Path, child_env: dict[str, str], reserve: int
) -> None:
    import subprocess

    db = str(tmp_path / "fix.db")
    done = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPT, db, str(reserve)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "2", "3", "4", "5", "6"]
    with SqliteSeqStore(db, "s") as store:
        assert store.next_out() > 6  # the parent's commits survived its crash
