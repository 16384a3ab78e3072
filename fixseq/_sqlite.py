"""The SQLite store: many sessions in one database file, shared by threads and processes.

The database holds the truth. A :class:`SqliteSeqStore` keeps no counter of its
own (it is a shared store of the core, ``_shared = True``): each call is one
transaction on the database, so any number of connections, threads and
processes can use one session of one file and together hand out each outbound
number exactly once.

Layout, format version 1 (the only one so far)::

    CREATE TABLE fixseq_meta (           -- fixseq's marker; one row:
        key   TEXT NOT NULL PRIMARY KEY, --   ('format_version', '1')
        value TEXT NOT NULL
    ) WITHOUT ROWID
    CREATE TABLE fixseq_sessions (
        session  TEXT    NOT NULL PRIMARY KEY,  -- the name, exactly as given
        last_out INTEGER NOT NULL,              -- next_out - 1 (the last number handed out)
        last_in  INTEGER NOT NULL,              -- next_in - 1 (the last inbound number taken)
        created  TEXT    NOT NULL               -- ISO 8601, microseconds, UTC offset
    ) WITHOUT ROWID                             -- (each column also has a CHECK)

The counters are stored as the last value, so ``MAX_SEQ_NUM + 1`` (after the
last number was handed out) fits SQLite's signed 64-bit INTEGER. The tables can
live in an application's own database beside its tables. A later format keeps
``fixseq_meta`` and raises ``format_version``; this version then refuses the
database rather than altering it.

Every sqlite3 error is translated at one boundary (:class:`_Boundary`), which
chains the original.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import sqlite3
import time
import urllib.parse
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel

from ._core import SeqCounters, check_session_name, utc_now
from ._protocols import MAX_SEQ_NUM
from ._twins import AsyncAdminShell, offload
from .errors import CorruptStoreError, SeqStoreError, StoreIOError, StoreLockedError

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["AsyncSqliteSeqStore", "SqliteSeqStore", "list_sessions"]

_FORMAT_VERSION: Final = 1
_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
_DEFAULT_BUSY_TIMEOUT: Final = 10.0
# UPDATE ... RETURNING arrived in SQLite 3.35; older libraries UPDATE then SELECT,
# inside the same BEGIN IMMEDIATE transaction, which is just as atomic.
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)

_META_COLUMNS: Final = [("key", "TEXT", 1), ("value", "TEXT", 0)]
_SESSION_COLUMNS: Final = [
    ("session", "TEXT", 1),
    ("last_out", "INTEGER", 0),
    ("last_in", "INTEGER", 0),
    ("created", "TEXT", 0),
]
_CREATE_META: Final = (
    "CREATE TABLE fixseq_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
)
_CREATE_SESSIONS: Final = """CREATE TABLE fixseq_sessions (
    session TEXT NOT NULL PRIMARY KEY CHECK (typeof(session) = 'text' AND length(session) > 0),
    last_out INTEGER NOT NULL CHECK (typeof(last_out) = 'integer' AND last_out >= 0),
    last_in INTEGER NOT NULL CHECK (typeof(last_in) = 'integer' AND last_in >= 0),
    created TEXT NOT NULL CHECK (typeof(created) = 'text')
) WITHOUT ROWID"""
_FIND_TABLES: Final = (
    "SELECT lower(name), type FROM sqlite_master "
    "WHERE lower(name) IN ('fixseq_meta', 'fixseq_sessions')"
)
_SELECT: Final = "SELECT last_out, last_in, created FROM fixseq_sessions WHERE session = ?1"
_RETURNING: Final = " RETURNING last_out, last_in, created"
_UPDATES: Final = {
    # ?1 is the session, ?2 the operation's value.
    "next_out": "UPDATE fixseq_sessions SET last_out = last_out + 1 "
    "WHERE session = ?1 AND last_out < ?2",
    "observed_in": "UPDATE fixseq_sessions SET last_in = ?2 WHERE session = ?1 AND last_in < ?2",
    "reset": "UPDATE fixseq_sessions SET last_out = 0, last_in = 0, created = ?2 "
    "WHERE session = ?1",
    "set_next_out": "UPDATE fixseq_sessions SET last_out = ?2 WHERE session = ?1",
    "set_next_in": "UPDATE fixseq_sessions SET last_in = ?2 WHERE session = ?1",
}

_State = tuple[int, int, datetime.datetime]
_sleep = time.sleep  # one name, so a test can see the waits


# -- the one error boundary ---------------------------------------------------

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26
_LOCKED_CODES: Final = frozenset({_SQLITE_BUSY, _SQLITE_LOCKED})
# CONSTRAINT and MISMATCH can only come from a row someone else wrote out of range:
# every value fixseq writes was validated first.
_CORRUPT_CODES: Final = frozenset({_SQLITE_CORRUPT, 19, 20, _SQLITE_NOTADB})
# PERM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL, NOLFS: the file system said no.
_IO_CODES: Final = frozenset({3, 8, 10, 13, 14, 15, 22})
# Python < 3.11 has no sqlite_errorcode on its exceptions: classify by message.
_MESSAGE_CODES: Final = (
    ("database is locked", _SQLITE_BUSY),
    ("database table is locked", _SQLITE_LOCKED),
    ("malformed", _SQLITE_CORRUPT),
    ("not a database", _SQLITE_NOTADB),
    ("could not decode", _SQLITE_CORRUPT),
    ("constraint failed", 19),
    ("datatype mismatch", 20),
    ("disk i/o error", 10),
    ("disk is full", 13),
    ("unable to open", 14),
    ("readonly database", 8),
)


def _error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # the primary code of an extended one
    text = str(exc).lower()
    for fragment, primary in _MESSAGE_CODES:
        if fragment in text:
            return primary
    return 19 if isinstance(exc, sqlite3.IntegrityError) else None


def _translate(exc: BaseException, db: str, busy_timeout: float) -> SeqStoreError:
    """Return the fixseq error for a sqlite3 (or OS) error on database ``db``."""
    if isinstance(exc, OSError):
        return StoreIOError(f"SQLite database {db}: {exc.strerror or exc}")
    assert isinstance(exc, sqlite3.Error)
    code = _error_code(exc)
    if code in _LOCKED_CODES:
        return StoreLockedError(
            f"SQLite database {db} is locked: another connection held it for longer than "
            f"busy_timeout ({busy_timeout:g} s) ({exc})"
        )
    if code in _CORRUPT_CODES:
        return CorruptStoreError(
            f"SQLite database {db} is damaged, is not a database, or holds a row out of "
            f"range ({exc}); fixseq never starts a session again at 1 on its own"
        )
    if code in _IO_CODES:
        return StoreIOError(f"SQLite database {db}: {exc}")
    return SeqStoreError(f"SQLite database {db}: {exc}")


class _Boundary:
    """Context manager: a sqlite3 or OS error inside becomes a SeqStoreError (chained)."""

    __slots__ = ("busy_timeout", "db")

    def __init__(self, db: str, busy_timeout: float) -> None:
        self.db = db
        self.busy_timeout = busy_timeout

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, (sqlite3.Error, OSError)) and not isinstance(exc, SeqStoreError):
            raise _translate(exc, self.db, self.busy_timeout) from exc


# -- argument checks ------------------------------------------------------------


def _check_path(path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike[str], not {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError("path must be a str or os.PathLike[str], not bytes")
    if not text:
        raise ValueError("path must not be empty (SQLite would make a temporary database)")
    if "\x00" in text:
        raise ValueError("path must not contain NUL")
    return os.path.abspath(text)


def _check_synchronous(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"synchronous must be a str, not {type(value).__name__}")
    level = value.upper()
    # The level reaches SQL as PRAGMA text (it cannot be a bound parameter):
    # only these exact words ever get there.
    if level not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {value!r}")
    return level


def _check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"busy_timeout must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"busy_timeout must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _show(session: str) -> str:
    """The session's repr for a message, cut short (a name may be 10,000 characters)."""
    return repr(session) if len(session) <= 80 else repr(session[:80]) + "..."


# -- opening ----------------------------------------------------------------------


def _create_file(db: str) -> None:
    """Create the database file 0600 if it is missing, durably.

    SQLite gives the -wal and -shm files the database file's permissions, so a
    file made 0600 here keeps all three private without touching the
    process-wide umask (which other threads share).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(db, flags, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask took away
        os.fsync(fd)
    finally:
        os.close(fd)
    # A new file's name is durable only once its directory is synced.
    dir_fd = os.open(os.path.dirname(db), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _connect(db: str, *, writable: bool, busy_timeout: float) -> sqlite3.Connection:
    """Open ``db`` (never creating it: fixseq creates the file itself, 0600)."""
    uri = "file:" + urllib.parse.quote(os.fsencode(db)) + ("?mode=rw" if writable else "?mode=ro")
    # isolation_level=None: no implicit transactions; fixseq writes BEGIN and
    # COMMIT itself. check_same_thread=False: the core's lock serialises every
    # use of the connection, so any thread may make the call.
    return sqlite3.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )


def _columns(cur: sqlite3.Cursor, table: str) -> list[tuple[str, str, int]]:
    rows = cur.execute(f"PRAGMA table_info({table})").fetchall()  # table: a constant
    return [(str(row[1]), str(row[2]).upper(), int(bool(row[5]))) for row in rows]


def _check_schema(cur: sqlite3.Cursor, db: str, *, create: bool) -> bool:
    """Check fixseq's tables in ``db`` (inside a transaction); create them if asked.

    Returns:
        True if the tables exist (now), False if they do not and ``create`` is False.

    Raises:
        CorruptStoreError: A ``fixseq_sessions`` or ``fixseq_meta`` that fixseq did not make.
        SeqStoreError: The tables were made by a newer format version.
    """
    found = dict(cur.execute(_FIND_TABLES).fetchall())
    if not found:
        if create:
            cur.execute(_CREATE_META)
            cur.execute(
                "INSERT INTO fixseq_meta (key, value) VALUES ('format_version', ?1)",
                (str(_FORMAT_VERSION),),
            )
            cur.execute(_CREATE_SESSIONS)
        return create
    if found.get("fixseq_meta") != "table" or _columns(cur, "fixseq_meta") != _META_COLUMNS:
        raise CorruptStoreError(
            f"SQLite database {db} has a {' and a '.join(sorted(found))} that fixseq did not "
            "make (no fixseq_meta table with a format version); fixseq leaves it alone"
        )
    rows = cur.execute("SELECT value FROM fixseq_meta WHERE key = 'format_version'").fetchall()
    text = rows[0][0] if rows else None
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and int(text) >= 1):
        raise CorruptStoreError(f"SQLite database {db}: fixseq_meta holds no valid format_version")
    if int(text) > _FORMAT_VERSION:
        raise SeqStoreError(
            f"SQLite database {db} was made by a newer fixseq (format version {text}); this "
            f"fixseq reads format version {_FORMAT_VERSION} and leaves the database unchanged: "
            "upgrade fixseq"
        )
    if found.get("fixseq_sessions") != "table":
        raise CorruptStoreError(
            f"SQLite database {db} has fixseq_meta but no fixseq_sessions table (dropped?); "
            "fixseq never starts its sessions again at 1 on its own"
        )
    if _columns(cur, "fixseq_sessions") != _SESSION_COLUMNS:
        raise CorruptStoreError(
            f"SQLite database {db}: the fixseq_sessions table does not have fixseq's columns"
        )
    return True


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (it does after some errors)


# -- the store --------------------------------------------------------------------


class SqliteSeqStore(SeqCounters):
    """A session's counters in one row of a SQLite database, shared safely.

    Many sessions live in one file (table ``fixseq_sessions``, one row each),
    which may be an application's own database. Every call is one atomic
    transaction on the database (``BEGIN IMMEDIATE``, one ``UPDATE ...
    RETURNING``, ``COMMIT``), and nothing is cached in the process, so any
    number of stores, threads and processes may use the same session: together
    they get each outbound number exactly once and the inbound mark never
    goes down. A number is returned only after its commit is durable. The
    store is safe to share between threads; :meth:`as_async` gives the
    asyncio/trio twin.

    The database is put in WAL mode. Contention waits up to ``busy_timeout``.
    A new database file (and so its ``-wal`` and ``-shm`` files) is made with
    permissions 0600.

    Args:
        path: The database file.
        session: The session's name: any non-empty text, kept exactly (no case
            folding); e.g. ``"FIX.4.4:BANK->BROKER"``.
        synchronous: SQLite's ``PRAGMA synchronous``: ``"OFF"``, ``"NORMAL"``,
            ``"FULL"`` (the default: a commit survives a power cut) or
            ``"EXTRA"``, in any case. ``"NORMAL"`` survives a process crash
            but a power cut may undo the last commits (and so reuse numbers).
        create: If True (the default) create the file, the table and the
            session's row (both counters at 1) as needed. If False, a missing
            database, table or row raises :class:`~fixseq.SeqStoreError` and
            nothing is created: a lost database must never look like a new
            session.
        busy_timeout: Seconds a call waits for another connection's
            transaction before it raises :class:`~fixseq.StoreLockedError`.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``session`` or ``path`` is empty or contains NUL;
            ``synchronous`` is not one of the four levels; ``busy_timeout`` is
            negative or not finite.
        CorruptStoreError: The file is not a SQLite database or is damaged; it
            has a ``fixseq_sessions`` table fixseq did not make; or the
            session's row holds values out of range.
        StoreLockedError: The database stayed locked for ``busy_timeout``.
        StoreIOError: The file cannot be created or opened.
        SeqStoreError: ``create=False`` and the session does not exist; or the
            database was made by a newer format version.
    """

    _shared = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        session: str,
        *,
        synchronous: str = "FULL",
        create: bool = True,
        busy_timeout: float = _DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        db = _check_path(path)
        session = check_session_name(session)
        level = _check_synchronous(synchronous)
        busy_timeout = _check_timeout(busy_timeout)
        if not isinstance(create, bool):
            raise TypeError(f"create must be a bool, not {type(create).__name__}")
        super().__init__()
        self._db = db
        self._session = session
        self._synchronous = level
        self._boundary = _Boundary(db, busy_timeout)
        self._created_text = ""
        self._created_dt = self._created
        with self._boundary:
            if create:
                _create_file(db)
            elif not os.path.exists(db):
                raise SeqStoreError(
                    f"SQLite database {db} does not exist and create=False: fixseq will not "
                    f"start session {_show(session)} again at 1"
                )
            self._conn = _connect(db, writable=True, busy_timeout=busy_timeout)
        try:
            with self._boundary:
                state = self._open(create)
        except BaseException:
            self._conn.close()
            raise
        self._restore(*state)

    def _open(self, create: bool) -> _State:
        cur = self._cur = self._conn.cursor()
        cur.execute(f"PRAGMA synchronous = {self._synchronous}")  # one of four checked words
        if self._synchronous in ("FULL", "EXTRA"):
            # macOS's fsync stops short of the drive's cache; F_FULLFSYNC does not.
            cur.execute("PRAGMA fullfsync = ON")
            cur.execute("PRAGMA checkpoint_fullfsync = ON")
        cur.execute("PRAGMA trusted_schema = OFF")  # a hostile file's schema runs no functions
        cur.execute("PRAGMA cell_size_check = ON")  # damaged pages are caught sooner
        if create:
            self._set_wal(cur)
        cur.execute("BEGIN IMMEDIATE" if create else "BEGIN")
        try:
            if not _check_schema(cur, self._db, create=create):
                raise SeqStoreError(
                    f"SQLite database {self._db} has no fixseq sessions and create=False: "
                    f"fixseq will not start session {_show(self._session)} at 1"
                )
            rows = cur.execute(_SELECT, (self._session,)).fetchall()
            if not rows:
                if not create:
                    raise SeqStoreError(
                        f"SQLite database {self._db} has no session {_show(self._session)} "
                        "and create=False: fixseq will not start it at 1"
                    )
                rows = [(0, 0, _format_created(utc_now()))]
                cur.execute(
                    "INSERT INTO fixseq_sessions (session, last_out, last_in, created) "
                    "VALUES (?1, ?2, ?3, ?4)",
                    (self._session, *rows[0]),
                )
            state = self._state(rows)
            cur.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise
        if not create:
            # Only now that the session is known to exist may the file change mode.
            self._set_wal(cur)
        return state

    def _set_wal(self, cur: sqlite3.Cursor) -> None:
        """Put the database in WAL mode, waiting up to busy_timeout for other connections.

        SQLite answers a journal-mode change that meets another connection's
        lock with SQLITE_BUSY at once, without its busy handler (several
        processes opening a new database together all try it), so the wait is
        here: short, growing pauses until the deadline.
        """
        deadline = time.monotonic() + self._boundary.busy_timeout
        pause = 0.001
        while True:
            try:
                cur.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if _error_code(exc) not in _LOCKED_CODES or time.monotonic() >= deadline:
                    raise
            _sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.05)

    # -- the shared-store hooks of the core --------------------------------------

    def _apply(self, op: str, seq_num: int) -> _State | None:
        cur = self._cur
        with self._boundary:
            if op == "read":
                # One SELECT in autocommit mode is one read transaction.
                return self._state(cur.execute(_SELECT, (self._session,)).fetchall())
            cur.execute("BEGIN IMMEDIATE")
            try:
                state = self._write(cur, op, seq_num)
                cur.execute("COMMIT")
            except BaseException:
                _rollback(self._conn)
                raise
            return state

    def _write(self, cur: sqlite3.Cursor, op: str, seq_num: int) -> _State | None:
        """Do ``op`` inside the open write transaction; return the state after it."""
        if op == "next_out":
            value: object = MAX_SEQ_NUM
        elif op == "reset":
            value = _format_created(utc_now())
        else:  # observed_in(n) stores last_in = n; set_next_*(n) store n - 1
            value = seq_num if op == "observed_in" else seq_num - 1
        params = (self._session, value)
        if _HAS_RETURNING:
            rows = cur.execute(_UPDATES[op] + _RETURNING, params).fetchall()
        else:
            cur.execute(_UPDATES[op], params)
            rows = cur.execute(_SELECT, params[:1]).fetchall() if cur.rowcount > 0 else []
        if rows:
            return self._state(rows)
        # Nothing matched: the counter was exhausted, observed_in was below the
        # mark, or the row is gone (which _state reports).
        state = self._state(cur.execute(_SELECT, (self._session,)).fetchall())
        if op == "next_out":
            if state[0] <= MAX_SEQ_NUM:  # pragma: no cover - the row passed its range check
                raise CorruptStoreError(f"SQLite database {self._db}: next_out did not advance")
            return None
        return state

    def _state(self, rows: list[tuple[object, ...]]) -> _State:
        """Turn the session's row into (next_out, next_in, created), checking every value."""
        if not rows:
            raise CorruptStoreError(
                f"SQLite database {self._db}: the row of session {_show(self._session)} is "
                "gone (deleted by another process?); fixseq never starts it again at 1 on its own"
            )
        last_out, last_in, created = rows[0]
        for name, value in (("last_out", last_out), ("last_in", last_in)):
            if type(value) is not int or not 0 <= value <= MAX_SEQ_NUM:
                raise CorruptStoreError(
                    f"SQLite database {self._db}: session {_show(self._session)} holds "
                    f"{name} = {value!r}, outside 0..{MAX_SEQ_NUM}"
                )
        if created != self._created_text:
            self._created_dt = self._parse_created(created)
            self._created_text = str(created)
        assert isinstance(last_out, int) and isinstance(last_in, int)
        return last_out + 1, last_in + 1, self._created_dt

    def _parse_created(self, created: object) -> datetime.datetime:
        try:
            if not isinstance(created, str):
                raise TypeError(type(created).__name__)
            value = datetime.datetime.fromisoformat(created)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("no UTC offset")
        except (TypeError, ValueError) as exc:
            raise CorruptStoreError(
                f"SQLite database {self._db}: session {_show(self._session)} holds created = "
                f"{created!r}, not an ISO 8601 time with a UTC offset"
            ) from exc
        return value.astimezone(datetime.timezone.utc)

    def _release(self) -> None:
        with self._boundary:
            self._conn.close()

    # -- public extras ------------------------------------------------------------

    @property
    def path(self) -> str:
        """The database file, as an absolute path."""
        return self._db

    @property
    def session(self) -> str:
        """The session's name, exactly as given."""
        return self._session

    @property
    def synchronous(self) -> str:
        """The ``PRAGMA synchronous`` level in use, upper case."""
        return self._synchronous

    def as_async(self) -> AsyncSqliteSeqStore:
        """Return an :class:`AsyncSqliteSeqStore` over this same store and connection."""
        return AsyncSqliteSeqStore._over(self)

    def __repr__(self) -> str:
        state = (
            "closed"
            if self._closed
            else f"last seen next_out={self._next_out}, next_in={self._next_in}"
        )
        return f"<{type(self).__name__} {self._db!r} session={_show(self._session)} {state}>"


def _format_created(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


class AsyncSqliteSeqStore(AsyncAdminShell[SqliteSeqStore]):
    """The async twin of :class:`SqliteSeqStore`, for asyncio and trio.

    Every coroutine runs the sync store's method in a worker thread (anyio),
    so the event loop never blocks on the database. ``as_sync()`` returns the
    :class:`SqliteSeqStore` underneath: the same connection, the same closed
    state. The constructor opens the database synchronously, once; inside an
    event loop prefer ``await AsyncSqliteSeqStore.open(...)``.

    Args:
        path: As :class:`SqliteSeqStore`.
        session: As :class:`SqliteSeqStore`.
        synchronous: As :class:`SqliteSeqStore`.
        create: As :class:`SqliteSeqStore`.
        busy_timeout: As :class:`SqliteSeqStore`.

    Raises:
        TypeError: As :class:`SqliteSeqStore`.
        ValueError: As :class:`SqliteSeqStore`.
        SeqStoreError: As :class:`SqliteSeqStore` (and its subclasses).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        session: str,
        *,
        synchronous: str = "FULL",
        create: bool = True,
        busy_timeout: float = _DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(
            SqliteSeqStore(
                path, session, synchronous=synchronous, create=create, busy_timeout=busy_timeout
            )
        )

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        session: str,
        *,
        synchronous: str = "FULL",
        create: bool = True,
        busy_timeout: float = _DEFAULT_BUSY_TIMEOUT,
    ) -> Self:
        """Open the store in a worker thread, without blocking the event loop.

        Takes the same arguments as the constructor. If the calling task is
        cancelled meanwhile, the opening finishes, the store is closed again
        and the cancellation propagates: no connection is left open.

        Returns:
            The open store.

        Raises:
            TypeError: As :class:`SqliteSeqStore`.
            ValueError: As :class:`SqliteSeqStore`.
            SeqStoreError: As :class:`SqliteSeqStore` (and its subclasses).
        """
        opener = functools.partial(
            SqliteSeqStore,
            path,
            session,
            synchronous=synchronous,
            create=create,
            busy_timeout=busy_timeout,
        )
        with anyio.CancelScope(shield=True):
            store = await offload(opener)
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await offload(store.close)
            raise
        return cls._over(store)

    @property
    def path(self) -> str:
        """The database file, as an absolute path."""
        return self._wrapped.path

    @property
    def session(self) -> str:
        """The session's name, exactly as given."""
        return self._wrapped.session

    @property
    def synchronous(self) -> str:
        """The ``PRAGMA synchronous`` level in use, upper case."""
        return self._wrapped.synchronous


def list_sessions(path: str | os.PathLike[str]) -> list[str]:
    """Return the names of the sessions a SQLite database holds, sorted.

    Args:
        path: The database file.

    Returns:
        The session names (sorted by code point); ``[]`` for a database
        without fixseq's table.

    Raises:
        TypeError: ``path`` is not a str or ``os.PathLike[str]``.
        ValueError: ``path`` is empty.
        SeqStoreError: ``path`` does not exist (nothing is created), or the
            database was made by a newer format version.
        CorruptStoreError: The file is not a SQLite database or is damaged,
            or has a ``fixseq_sessions`` table fixseq did not make.
        StoreLockedError: The database stayed locked too long.
    """
    db = _check_path(path)
    if not os.path.exists(db):
        raise SeqStoreError(f"SQLite database {db} does not exist")
    boundary = _Boundary(db, _DEFAULT_BUSY_TIMEOUT)
    with boundary:
        # Read-write (never create): a read-only connection to a WAL database
        # would leave its -wal and -shm files behind.
        writable = os.access(db, os.W_OK)
        conn = _connect(db, writable=writable, busy_timeout=_DEFAULT_BUSY_TIMEOUT)
        try:
            cur = conn.cursor()
            cur.execute("BEGIN")
            try:
                found = _check_schema(cur, db, create=False)
                query = "SELECT session FROM fixseq_sessions"
                rows = cur.execute(query).fetchall() if found else []
            finally:
                _rollback(conn)  # read only: nothing to commit
        finally:
            conn.close()
    names = [row[0] for row in rows]
    if not all(isinstance(name, str) for name in names):
        raise CorruptStoreError(f"SQLite database {db}: fixseq_sessions holds a non-text name")
    return sorted(names)
