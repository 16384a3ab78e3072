"""SqliteSeqStore: one row per session, the database holds the truth."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import sqlite3
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fixseq
from fixseq import (
    MAX_SEQ_NUM,
    AsyncSqliteSeqStore,
    CorruptStoreError,
    InvalidSeqNumError,
    MemorySeqStore,
    SeqNumExhaustedError,
    SeqState,
    SeqStoreError,
    SqliteSeqStore,
    StoreClosedError,
    StoreIOError,
    StoreLockedError,
    _sqlite,
    _sqlite_db,
    list_sessions,
)
from fixseq._rules import check_session_name

if TYPE_CHECKING:
    from collections.abc import Iterator

SESSION = "FIX.4.4:BANK->BROKER"


@contextlib.contextmanager
def raw(db: str | Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, closed afterwards."""
    conn = sqlite3.connect(str(db), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def row(db: str | Path, session: str = SESSION) -> tuple[object, ...] | None:
    """The session's raw row (last_out, last_in, created), or None."""
    with raw(db) as conn:
        found = conn.execute(
            "SELECT last_out, last_in, created FROM fixseq_sessions WHERE session = ?", (session,)
        ).fetchall()
    return tuple(found[0]) if found else None


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "seq.db")


# -- the basics and persistence -------------------------------------------------------


def test_a_new_session_starts_at_one_and_every_change_is_in_the_row(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        assert store.snapshot() == SeqState(1, 1)
        assert [store.next_out() for _ in range(3)] == [1, 2, 3]
        store.observed_in(7)
        store.observed_in(4)  # below the mark: changes nothing
        assert store.snapshot() == SeqState(4, 8)
        assert row(db)[:2] == (3, 7)  # type: ignore[index]  # the last values: next - 1
        created = store.creation_time()
    with SqliteSeqStore(db, SESSION, create=False) as store:
        assert store.snapshot() == SeqState(4, 8)
        assert store.creation_time() == created  # to the microsecond
        assert store.path == db and store.session == SESSION and store.synchronous == "FULL"


def test_reset_changes_counters_and_creation_time_in_one_row_write(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
        store.observed_in(5)
        before = store.creation_time()
        store.reset()
        after = store.creation_time()
        assert store.snapshot() == SeqState(1, 1)
        assert after > before and after.tzinfo is datetime.timezone.utc
        assert row(db) == (0, 0, after.isoformat(timespec="microseconds"))


def test_set_next_out_and_in_leave_creation_time_alone(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        created = store.creation_time()
        store.set_next_out(1000)
        store.set_next_in(50)
        store.set_next_out(10)  # backwards too: an operator's override
        assert store.snapshot() == SeqState(10, 50)
        assert store.creation_time() == created
        assert row(db)[:2] == (9, 49)  # type: ignore[index]


def test_max_seq_num_fits_and_exhaustion_changes_nothing(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        store.set_next_out(MAX_SEQ_NUM)
        store.observed_in(MAX_SEQ_NUM)
        assert store.next_out() == MAX_SEQ_NUM
        assert row(db)[:2] == (MAX_SEQ_NUM, MAX_SEQ_NUM)  # type: ignore[index]
    with SqliteSeqStore(db, SESSION) as store:
        assert store.snapshot() == SeqState(MAX_SEQ_NUM + 1, MAX_SEQ_NUM + 1)
        with pytest.raises(SeqNumExhaustedError):
            store.next_out()
        assert store.peek_out() == MAX_SEQ_NUM + 1
        assert row(db)[:2] == (MAX_SEQ_NUM, MAX_SEQ_NUM)  # type: ignore[index]
        store.set_next_out(5)
        assert store.next_out() == 5


def test_no_counter_is_cached_two_stores_and_an_operator_share_the_row(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as a, SqliteSeqStore(db, SESSION) as b:
        assert a.next_out() == 1
        assert b.next_out() == 2
        assert a.next_out() == 3
        b.observed_in(9)
        assert a.current_in() == 10
        with raw(db) as conn:  # an operator's UPDATE in the sqlite3 shell
            conn.execute("UPDATE fixseq_sessions SET last_out = 99 WHERE session = ?", (SESSION,))
        assert a.peek_out() == 100
        assert b.next_out() == 100


def test_bad_seq_nums_are_rejected_and_change_nothing(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
        before = row(db)
        for bad in (0, -1, MAX_SEQ_NUM + 1):
            with pytest.raises(InvalidSeqNumError):
                store.observed_in(bad)
            with pytest.raises(InvalidSeqNumError):
                store.set_next_out(bad)
        for wrong in (1.0, "2", None, True):
            with pytest.raises(TypeError):
                store.set_next_in(wrong)  # type: ignore[arg-type]
        assert row(db) == before


def test_close_releases_the_connection_and_the_store_refuses_calls(db: str) -> None:
    store = SqliteSeqStore(db, SESSION)
    store.next_out()
    store.close()
    store.close()  # a second close does nothing
    assert store.closed
    assert sorted(os.listdir(os.path.dirname(db))) == ["seq.db"]  # WAL checkpointed, removed
    with pytest.raises(StoreClosedError):
        store.next_out()
    with pytest.raises(StoreClosedError):
        store.creation_time()
    assert "closed" in repr(store)


def test_repr_cuts_long_session_names(db: str) -> None:
    with SqliteSeqStore(db, "x" * 10_000) as store:
        text = repr(store)
    assert len(text) < 300 and "..." in text


def test_the_async_twin_has_the_same_methods() -> None:
    renames = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
    sync = {n for n in dir(SqliteSeqStore) if not n.startswith("_") or n in renames}
    sync -= {"as_async", "closed"}
    async_names = {n for n in dir(AsyncSqliteSeqStore) if not n.startswith("_")}
    async_names |= {"__aenter__", "__aexit__"}
    assert {renames.get(n, n) for n in sync} == async_names - {"as_sync", "open", "wrapped"}


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"session": ""}, ValueError),
        ({"session": "a\x00b"}, ValueError),
        ({"session": "\ud800"}, ValueError),
        ({"session": b"x"}, TypeError),
        ({"session": None}, TypeError),
        ({"path": ""}, ValueError),
        ({"path": b"/tmp/x.db"}, TypeError),
        ({"path": 3}, TypeError),
        ({"synchronous": "FULL; DROP TABLE fixseq_sessions"}, ValueError),
        ({"synchronous": "2"}, ValueError),
        ({"synchronous": ""}, ValueError),
        ({"synchronous": None}, TypeError),
        ({"busy_timeout": -1}, ValueError),
        ({"busy_timeout": float("nan")}, ValueError),
        ({"busy_timeout": float("inf")}, ValueError),
        ({"busy_timeout": "5"}, TypeError),
        ({"busy_timeout": True}, TypeError),
        ({"create": 1}, TypeError),
    ],
)
def test_bad_arguments_raise_before_anything_is_created(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    args: dict[str, object] = {"path": str(tmp_path / "seq.db"), "session": SESSION, **kwargs}
    with pytest.raises(error):
        SqliteSeqStore(**args)  # type: ignore[arg-type]
    with pytest.raises(error):
        AsyncSqliteSeqStore(**args)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("given_level", "pragma"), [("off", 0), ("Normal", 1), ("FULL", 2), ("eXtRa", 3)]
)
def test_synchronous_levels_in_any_case_reach_the_pragma(
    db: str, given_level: str, pragma: int
) -> None:
    with SqliteSeqStore(db, SESSION, synchronous=given_level) as store:
        assert store.synchronous == given_level.upper()
        conn = store._conn
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.next_out() == 1


# -- files: permissions, create=False, list_sessions -----------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_new_database_wal_and_shm_files_are_0600_whatever_the_umask(db: str) -> None:
    old = os.umask(0)  # the most permissive umask: the store must not rely on it
    try:
        store = SqliteSeqStore(db, SESSION)
    finally:
        os.umask(old)
    with store:
        store.next_out()
        names = sorted(os.listdir(os.path.dirname(db)))
        assert names == ["seq.db", "seq.db-shm", "seq.db-wal"]
        for name in names:
            mode = stat.S_IMODE(os.stat(os.path.join(os.path.dirname(db), name)).st_mode)
            assert mode == 0o600, (name, oct(mode))


def test_create_false_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(SeqStoreError, match="does not exist"):
        SqliteSeqStore(path, SESSION, create=False)
    with pytest.raises(SeqStoreError, match="does not exist"):
        list_sessions(path)
    assert os.listdir(tmp_path) == []


def test_create_false_on_a_database_without_the_table_changes_nothing(db: str) -> None:
    with raw(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    before = digest(db)
    with pytest.raises(SeqStoreError, match="create=False"):
        SqliteSeqStore(db, SESSION, create=False)
    assert digest(db) == before
    assert sorted(os.listdir(os.path.dirname(db))) == ["seq.db"]
    with raw(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_create_false_on_a_missing_session_adds_no_row(db: str) -> None:
    SqliteSeqStore(db, "other").close()
    with pytest.raises(SeqStoreError, match=r"no session 'FIX\.4\.4:BANK->BROKER'"):
        SqliteSeqStore(db, SESSION, create=False)
    assert row(db) is None
    assert list_sessions(db) == ["other"]


def test_list_sessions(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with raw(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    assert list_sessions(path) == []  # an application's database, no fixseq table yet
    names = ["b", "FIX.4.4:Z->A", "a", "é", "🚀", "A", "a " * 3]
    for name in names:
        SqliteSeqStore(path, name).close()
    assert list_sessions(path) == sorted(names)
    assert list_sessions(str(path)) == sorted(names)
    assert sorted(os.listdir(tmp_path)) == ["app.db"]  # no -wal or -shm left behind


def test_an_empty_file_is_damage_not_a_new_database(db: str) -> None:
    # Only a missing file is created: an emptied one (0 bytes) is refused, whatever create says.
    Path(db).touch()
    for create in (False, True):
        with pytest.raises(CorruptStoreError, match="0 bytes"):
            SqliteSeqStore(db, SESSION, create=create)
    assert Path(db).stat().st_size == 0


# -- bad files and rows ---------------------------------------------------------------------


def test_an_applications_database_gets_the_table_beside_its_own(db: str) -> None:
    with raw(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1, 100)")
        conn.execute("PRAGMA user_version = 42")
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
    with raw(db) as conn:
        assert conn.execute("SELECT * FROM orders").fetchall() == [(1, 100)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 42  # not ours to touch


FOREIGN_SCHEMAS = {
    "their own fixseq_sessions": [
        "CREATE TABLE fixseq_sessions (name TEXT, seq INTEGER)",
        "INSERT INTO fixseq_sessions VALUES ('FIX.4.4:BANK->BROKER', 5)",
    ],
    "a view named fixseq_sessions": ["CREATE VIEW fixseq_sessions AS SELECT 1 AS session"],
    "upper-case FIXSEQ_SESSIONS": ["CREATE TABLE FIXSEQ_SESSIONS (x)"],
    "their own fixseq_meta": ["CREATE TABLE fixseq_meta (a, b, c)"],
    "meta without a format version": [
        "CREATE TABLE fixseq_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
    ],
    "meta with a garbage version": [
        "CREATE TABLE fixseq_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO fixseq_meta VALUES ('format_version', 'one')",
        _sqlite_db.CREATE_SESSIONS,
    ],
    "meta whose sessions table was dropped": [
        "CREATE TABLE fixseq_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO fixseq_meta VALUES ('format_version', '1')",
    ],
    "meta with a sessions table of other columns": [
        "CREATE TABLE fixseq_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO fixseq_meta VALUES ('format_version', '1')",
        "CREATE TABLE fixseq_sessions (session TEXT PRIMARY KEY, next INTEGER)",
    ],
}


@pytest.mark.parametrize("case", sorted(FOREIGN_SCHEMAS))
def test_tables_fixseq_did_not_make_are_refused_and_left_alone(db: str, case: str) -> None:
    with raw(db) as conn:
        for statement in FOREIGN_SCHEMAS[case]:
            conn.execute(statement)
    before = digest(db)
    with pytest.raises(CorruptStoreError, match=r"seq\.db"):
        SqliteSeqStore(db, SESSION)
    with pytest.raises(CorruptStoreError):
        list_sessions(db)
    assert digest(db) == before


def test_a_newer_format_is_refused_clearly_and_not_altered(db: str) -> None:
    SqliteSeqStore(db, SESSION).close()
    with raw(db) as conn:
        conn.execute("UPDATE fixseq_meta SET value = '2' WHERE key = 'format_version'")
    before = digest(db)
    for attempt in (
        lambda: SqliteSeqStore(db, SESSION),
        lambda: SqliteSeqStore(db, "new session"),
        lambda: list_sessions(db),
    ):
        with pytest.raises(SeqStoreError, match=r"newer fixseq .format version 2.*upgrade") as info:
            attempt()
        assert not isinstance(info.value, CorruptStoreError)
    assert digest(db) == before


def garbage_files(tmp_path: Path) -> dict[str, bytes]:
    """Files that are not (or no longer) a usable SQLite database."""
    good = tmp_path / "good.db"
    with SqliteSeqStore(good, SESSION) as store:
        for _ in range(10):
            store.next_out()
    image = good.read_bytes()
    flipped = bytearray(image)
    flipped[0:16] = b"SQLite format 4\x00"  # the magic string
    schema_page = bytearray(image)
    for offset in range(100, min(len(image), 4096)):  # the schema page's cells
        schema_page[offset] ^= 0x5A
    return {
        "random bytes": os.urandom(8192),
        "a text file": b"sender=12\ntarget=7\n" * 40,
        "a bad magic": bytes(flipped),
        "a damaged schema page": bytes(schema_page),
        "a truncated database": image[: len(image) // 2 + 7],
    }


def test_garbage_files_raise_corrupt_store_error_and_stay_unchanged(tmp_path: Path) -> None:
    for name, content in garbage_files(tmp_path).items():
        path = tmp_path / f"{name}.db"
        path.write_bytes(content)
        for attempt in (
            lambda p: SqliteSeqStore(p, SESSION),
            lambda p: SqliteSeqStore(p, SESSION, create=False),
            list_sessions,
        ):
            with pytest.raises(CorruptStoreError) as info:
                attempt(path)
            assert str(path) in str(info.value), name
            assert isinstance(info.value.__cause__, sqlite3.Error), name
        assert path.read_bytes() == content, name


BAD_VALUES = [
    ("last_out", -1),
    ("last_in", -5),
    ("last_out", "twelve"),
    ("last_in", 1.5),
    ("last_out", b"\x01"),
    ("created", "yesterday"),
    ("created", "2026-11-25T17:00:00"),  # naive: no UTC offset
    ("created", 1764090000),
]


def damage(db: str, column: str, value: object, session: str = SESSION) -> None:
    """Write an out-of-range value past the table's CHECK constraints, as a bad tool would."""
    with raw(db) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute(
            f"UPDATE fixseq_sessions SET {column} = ? WHERE session = ?",  # column: a constant
            (value, session),
        )


@pytest.mark.parametrize(("column", "value"), BAD_VALUES)
def test_out_of_range_rows_raise_corrupt_store_error_at_open(
    db: str, column: str, value: object
) -> None:
    SqliteSeqStore(db, SESSION).close()
    damage(db, column, value)
    before = row(db)
    with pytest.raises(CorruptStoreError, match=column):
        SqliteSeqStore(db, SESSION)
    assert row(db) == before


@pytest.mark.parametrize(("column", "value"), BAD_VALUES)
def test_a_row_damaged_while_open_is_never_read_or_advanced(
    db: str, column: str, value: object
) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
        store.observed_in(1)
        damage(db, column, value)
        before = row(db)
        for call in (
            store.next_out,
            lambda: store.observed_in(3),
            lambda: store.observed_in(1),  # below the mark: still no trusting the row
            store.peek_out,
            store.current_in,
            store.snapshot,
            store.creation_time,
        ):
            with pytest.raises(CorruptStoreError, match=column):
                call()
            assert row(db) == before
        # An absolute change that leaves the damaged value in place is refused too.
        other = {"last_out": store.set_next_in, "last_in": store.set_next_out}.get(column)
        if other is not None:
            with pytest.raises(CorruptStoreError, match=column):
                other(4)
            assert row(db) == before
        # reset() writes every column: it is how an operator repairs the row, and
        # the same store carries on (a damaged row stops no store).
        store.reset()
        assert row(db)[:2] == (0, 0)  # type: ignore[index]
        assert store.next_out() == 1


def test_a_row_deleted_under_a_live_store_is_never_recreated(db: str) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
        with raw(db) as conn:
            conn.execute("DELETE FROM fixseq_sessions")
        for call in (store.next_out, store.current_in, store.reset, lambda: store.observed_in(1)):
            with pytest.raises(CorruptStoreError, match="gone"):
                call()
        assert row(db) is None


# -- session names: hostile, isolated -----------------------------------------------------------

HOSTILE_NAMES = [
    "'; DROP TABLE fixseq_sessions; --",
    "Robert'); DELETE FROM fixseq_sessions WHERE ('1'='1",
    '"quoted"',
    "%",
    "_",
    "*",
    "a\\b",
    "line\nbreak\ttab",
    " ",
    "x" * 10_000,
    "🚀📈 FIX.4.4:銀行->ブローカー",
    "\u202eRTL\u200d",
    "FIX.4.4:BANK->BROKER",
    "fix.4.4:bank->broker",  # differs only in case
    "FIX.4.4:BANK->BROKER ",  # differs only by a trailing space
    "caf\u00e9",
    "cafe\u0301",  # the same text as above in another normal form
]


def test_hostile_names_are_bound_never_interpolated_and_stay_isolated(db: str) -> None:
    stores = [SqliteSeqStore(db, name) for name in HOSTILE_NAMES]
    try:
        for index, store in enumerate(stores):
            store.set_next_out(100 + index)
            store.observed_in(1000 + index)
        for index, store in enumerate(stores):
            assert store.snapshot() == SeqState(100 + index, 1001 + index)
        assert list_sessions(db) == sorted(HOSTILE_NAMES)
        with raw(db) as conn:
            assert conn.execute("SELECT count(*) FROM fixseq_sessions").fetchone()[0] == len(
                HOSTILE_NAMES
            )
    finally:
        for store in stores:
            store.close()
    for index, name in enumerate(HOSTILE_NAMES):
        with SqliteSeqStore(db, name, create=False) as store:
            assert store.snapshot() == SeqState(100 + index, 1001 + index)


OPS = st.one_of(
    st.tuples(st.just("next_out"), st.just(0)),
    st.tuples(st.just("observed_in"), st.integers(1, 50)),
    st.tuples(st.just("reset"), st.just(0)),
    st.tuples(st.just("set_next_out"), st.integers(1, 50)),
    st.tuples(st.just("set_next_in"), st.integers(1, 50)),
)
NAMES = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1)


@settings(max_examples=25)
@given(
    names=st.lists(NAMES, min_size=2, max_size=4, unique=True),
    steps=st.lists(st.tuples(st.integers(0, 3), OPS), max_size=30),
)
def test_sessions_are_isolated_against_a_model(
    names: list[str], steps: list[tuple[int, tuple[str, int]]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "iso.db")
        models = [MemorySeqStore() for _ in names]
        stores = [SqliteSeqStore(db, name, synchronous="OFF") for name in names]
        try:
            for which, (op, value) in steps:
                which %= len(names)
                for target in (models[which], stores[which]):
                    method = getattr(target, op)
                    method() if op in ("next_out", "reset") else method(value)
                for model, store in zip(models, stores, strict=True):
                    assert store.snapshot() == model.snapshot()
        finally:
            for store in stores:
                store.close()
        assert list_sessions(db) == sorted(names)
        for model, name in zip(models, names, strict=True):
            with SqliteSeqStore(db, name, create=False) as store:
                assert store.snapshot() == model.snapshot()


# -- threads, locks and the error boundary ---------------------------------------------------------


def test_threads_sharing_one_store_get_each_number_once(db: str) -> None:
    store = SqliteSeqStore(db, SESSION, synchronous="NORMAL")
    start = threading.Barrier(8)
    results: list[list[int]] = [[] for _ in range(8)]

    def work(index: int) -> None:
        start.wait()
        results[index].extend(store.next_out() for _ in range(150))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with store:
        assert sorted(n for numbers in results for n in numbers) == list(range(1, 1201))
        assert store.peek_out() == 1201


def test_threads_with_their_own_connections_get_each_number_once(db: str) -> None:
    stores = [SqliteSeqStore(db, SESSION, synchronous="NORMAL") for _ in range(4)]
    start = threading.Barrier(4)
    results: list[list[int]] = [[] for _ in range(4)]

    def work(index: int) -> None:
        start.wait()
        results[index].extend(stores[index].next_out() for _ in range(150))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(n for numbers in results for n in numbers) == list(range(1, 601))


def test_a_lock_held_past_busy_timeout_raises_store_locked_error_naming_the_db(db: str) -> None:
    store = SqliteSeqStore(db, SESSION, busy_timeout=0.05)
    with raw(db) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreLockedError, match=r"seq\.db is locked.*busy_timeout") as info:
            store.next_out()
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert isinstance(info.value, OSError)
        with pytest.raises(StoreLockedError):
            SqliteSeqStore(db, "another", busy_timeout=0.05)
        assert store.peek_out() == 1  # WAL: reading never waits for the writer
        blocker.execute("ROLLBACK")
    with store:  # not stopped: the next call goes through
        assert store.next_out() == 1
    assert list_sessions(db) == [SESSION]


def test_contention_waits_instead_of_failing(db: str) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with raw(db) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            blocker.execute("UPDATE fixseq_sessions SET last_out = last_out + 10")
            holding.set()
            release.wait(30)
            blocker.execute("COMMIT")

    def announce(sql: str) -> None:
        if sql.startswith("BEGIN IMMEDIATE"):
            release.set()  # the holder commits while this statement waits for the lock

    with SqliteSeqStore(db, SESSION, busy_timeout=30) as store:
        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(30)
        # SQLite calls the trace callback as the statement starts, before its lock
        # attempt; the holder needs a wake-up and a synced COMMIT before it lets go.
        store._conn.set_trace_callback(announce)
        assert store.next_out() == 11  # waited for the other transaction, then saw it
        store._conn.set_trace_callback(None)
        holder.join()


def test_a_wal_switch_that_meets_a_lock_is_retried(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqliteSeqStore(db, SESSION).close()
    with raw(db) as reader:
        reader.execute("PRAGMA journal_mode = DELETE")  # as if an application switched it back
        # A writer's RESERVED lock: SQLite refuses the switch at once, without
        # its busy handler (waiting could deadlock), so fixseq must wait itself.
        reader.execute("BEGIN IMMEDIATE")
        pauses: list[float] = []

        def pause(seconds: float) -> None:
            pauses.append(seconds)
            if reader.in_transaction:
                reader.execute("COMMIT")

        monkeypatch.setattr(_sqlite_db, "_sleep", pause)
        with SqliteSeqStore(db, SESSION) as store:
            assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert store.next_out() == 1
        assert pauses, "the switch never met the lock"


def test_a_wal_switch_blocked_for_good_raises_store_locked_error(db: str) -> None:
    SqliteSeqStore(db, SESSION).close()
    with raw(db) as reader:
        reader.execute("PRAGMA journal_mode = DELETE")
        reader.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreLockedError, match=r"seq\.db"):
            SqliteSeqStore(db, SESSION, busy_timeout=0.05)


class FailingCursor:
    """Stands in for the store's cursor: the statement named fails like a dying disk."""

    def __init__(self, real: sqlite3.Cursor, fail_on: str) -> None:
        self.real = real
        self.fail_on = fail_on

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        if sql.startswith(self.fail_on):
            exc = sqlite3.OperationalError("disk I/O error")
            exc.sqlite_errorcode = 10  # type: ignore[attr-defined]
            raise exc
        return self.real.execute(sql, params)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


@pytest.mark.parametrize("fail_on", ["BEGIN", "UPDATE", "COMMIT"])
def test_an_io_error_is_translated_rolled_back_and_does_not_stop_the_store(
    db: str, fail_on: str
) -> None:
    with SqliteSeqStore(db, SESSION) as store:
        store.next_out()
        real = store._database.cur
        store._database.cur = FailingCursor(real, fail_on)  # type: ignore[assignment]
        with pytest.raises(StoreIOError, match=r"seq\.db: disk I/O error") as info:
            store.next_out()
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert not store._conn.in_transaction  # rolled back
        assert row(db)[0] == 1  # type: ignore[index]  # no number was handed out
        store._database.cur = real
        assert store.next_out() == 2


@pytest.mark.parametrize(
    ("code", "message", "error"),
    [
        (5, "database is locked", StoreLockedError),
        (6, "database table is locked", StoreLockedError),
        (11, "database disk image is malformed", CorruptStoreError),
        (26, "file is not a database", CorruptStoreError),
        (19, "CHECK constraint failed", CorruptStoreError),
        (10 | (3 << 8), "disk I/O error", StoreIOError),  # an extended code: IOERR_WRITE
        (13, "database or disk is full", StoreIOError),
        (14, "unable to open database file", StoreIOError),
        (8, "attempt to write a readonly database", StoreIOError),
        (1, "SQL logic error", SeqStoreError),
    ],
)
def test_sqlite_errors_map_to_the_error_tree_with_or_without_error_codes(
    code: int, message: str, error: type[SeqStoreError]
) -> None:
    with_code = sqlite3.OperationalError(message)
    with_code.sqlite_errorcode = code  # type: ignore[attr-defined]
    without_code = sqlite3.OperationalError(message)  # as on Python 3.10
    for exc in (with_code, without_code):
        translated = _sqlite_db.translate(exc, "/x/seq.db", 2.5)
        assert type(translated) is error
        assert "/x/seq.db" in str(translated)


def test_unusable_paths_raise_store_io_error(tmp_path: Path) -> None:
    with pytest.raises(StoreIOError, match="missing"):
        SqliteSeqStore(tmp_path / "missing" / "seq.db", SESSION)
    with pytest.raises(StoreIOError):
        SqliteSeqStore(tmp_path, SESSION)  # a directory


def test_without_returning_old_sqlite_path_keeps_every_rule(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "_HAS_RETURNING", False)
    with SqliteSeqStore(db, SESSION) as store:
        assert [store.next_out() for _ in range(3)] == [1, 2, 3]
        store.observed_in(5)
        store.observed_in(2)
        assert store.snapshot() == SeqState(4, 6)
        store.set_next_out(MAX_SEQ_NUM)
        assert store.next_out() == MAX_SEQ_NUM
        with pytest.raises(SeqNumExhaustedError):
            store.next_out()
        store.reset()
        assert store.snapshot() == SeqState(1, 1)
        with raw(db) as conn:
            conn.execute("DELETE FROM fixseq_sessions")
        with pytest.raises(CorruptStoreError, match="gone"):
            store.set_next_in(3)


def test_check_session_name_returns_a_plain_str() -> None:
    class Name(str):
        def __eq__(self, other: object) -> bool:  # a subclass that compares oddly
            return True

        __hash__ = str.__hash__

    checked = check_session_name(Name("a"))
    assert type(checked) is str and checked == "a"
    assert check_session_name("x" * 10_000) == "x" * 10_000
    for bad in ("", "\x00", "a\x00", "\udfff"):
        with pytest.raises(ValueError):
            check_session_name(bad)
    with pytest.raises(TypeError):
        check_session_name(b"a")


def test_public_names_are_exported() -> None:
    for name in ("SqliteSeqStore", "AsyncSqliteSeqStore", "list_sessions"):
        assert name in fixseq.__all__
        assert getattr(fixseq, name).__doc__
