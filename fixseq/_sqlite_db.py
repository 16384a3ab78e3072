"""The SQLite store's database side: layout, opening, and the one error boundary.

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

Every sqlite3 (or OS) error is translated at one boundary, :class:`Boundary`,
which chains the original.
"""

from __future__ import annotations

import datetime
import math
import os
import sqlite3
import time
import urllib.parse
from typing import TYPE_CHECKING, Final

from .errors import CorruptStoreError, SeqStoreError, StoreIOError, StoreLockedError

if TYPE_CHECKING:
    from types import TracebackType

FORMAT_VERSION: Final = 1
SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
DEFAULT_BUSY_TIMEOUT: Final = 10.0
META_COLUMNS: Final = [("key", "TEXT", 1), ("value", "TEXT", 0)]
SESSION_COLUMNS: Final = [
    ("session", "TEXT", 1),
    ("last_out", "INTEGER", 0),
    ("last_in", "INTEGER", 0),
    ("created", "TEXT", 0),
]
CREATE_META: Final = (
    "CREATE TABLE fixseq_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
)
CREATE_SESSIONS: Final = """CREATE TABLE fixseq_sessions (
    session TEXT NOT NULL PRIMARY KEY CHECK (typeof(session) = 'text' AND length(session) > 0),
    last_out INTEGER NOT NULL CHECK (typeof(last_out) = 'integer' AND last_out >= 0),
    last_in INTEGER NOT NULL CHECK (typeof(last_in) = 'integer' AND last_in >= 0),
    created TEXT NOT NULL CHECK (typeof(created) = 'text')
) WITHOUT ROWID"""
FIND_TABLES: Final = (
    "SELECT lower(name), type FROM sqlite_master "
    "WHERE lower(name) IN ('fixseq_meta', 'fixseq_sessions')"
)
INSERT_SESSION: Final = (
    "INSERT INTO fixseq_sessions (session, last_out, last_in, created) VALUES (?1, ?2, ?3, ?4)"
)
SELECT: Final = "SELECT last_out, last_in, created FROM fixseq_sessions WHERE session = ?1"
RETURNING: Final = " RETURNING last_out, last_in, created"
UPDATES: Final = {
    # ?1 is the session, ?2 the operation's value. The two relative changes act
    # only on a counter in range (a damaged one matches nothing, and the SELECT
    # that follows reports it); the absolute ones overwrite, which is how a
    # damaged row is repaired.
    "next_out": "UPDATE fixseq_sessions SET last_out = last_out + 1 WHERE session = ?1 "
    "AND typeof(last_out) = 'integer' AND last_out >= 0 AND last_out < ?2",
    "observed_in": "UPDATE fixseq_sessions SET last_in = ?2 WHERE session = ?1 "
    "AND typeof(last_in) = 'integer' AND last_in >= 0 AND last_in < ?2",
    "reset": "UPDATE fixseq_sessions SET last_out = 0, last_in = 0, created = ?2 "
    "WHERE session = ?1",
    "set_next_out": "UPDATE fixseq_sessions SET last_out = ?2 WHERE session = ?1",
    "set_next_in": "UPDATE fixseq_sessions SET last_in = ?2 WHERE session = ?1",
}

_sleep = time.sleep  # one name, so a test can see the waits


# -- the one error boundary ---------------------------------------------------

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26
LOCKED_CODES: Final = frozenset({_SQLITE_BUSY, _SQLITE_LOCKED})
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


def error_code(exc: sqlite3.Error) -> int | None:
    """Return the primary SQLite error code of ``exc``, from its attribute or its message."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # the primary code of an extended one
    text = str(exc).lower()
    for fragment, primary in _MESSAGE_CODES:
        if fragment in text:
            return primary
    return 19 if isinstance(exc, sqlite3.IntegrityError) else None


def translate(exc: BaseException, db: str, busy_timeout: float) -> SeqStoreError:
    """Return the fixseq error for a sqlite3 (or OS) error on database ``db``."""
    if isinstance(exc, OSError):
        return StoreIOError(f"SQLite database {db}: {exc.strerror or exc}")
    assert isinstance(exc, sqlite3.Error)
    code = error_code(exc)
    if code in LOCKED_CODES:
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


class Boundary:
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
            raise translate(exc, self.db, self.busy_timeout) from exc


# -- argument checks ------------------------------------------------------------


def check_path(path: object) -> str:
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


def check_synchronous(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"synchronous must be a str, not {type(value).__name__}")
    level = value.upper()
    # The level reaches SQL as PRAGMA text (it cannot be a bound parameter):
    # only these exact words ever get there.
    if level not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {value!r}")
    return level


def check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"busy_timeout must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"busy_timeout must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def show(session: str) -> str:
    """The session's repr for a message, cut short (a name may be 10,000 characters)."""
    return repr(session) if len(session) <= 80 else repr(session[:80]) + "..."


# -- opening ----------------------------------------------------------------------


def create_file(db: str) -> None:
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


def connect(db: str, *, writable: bool, busy_timeout: float) -> sqlite3.Connection:
    """Open ``db`` (never creating it: fixseq creates the file itself, 0600)."""
    uri = "file:" + urllib.parse.quote(os.fsencode(db)) + ("?mode=rw" if writable else "?mode=ro")
    # isolation_level=None: no implicit transactions; fixseq writes BEGIN and
    # COMMIT itself. check_same_thread=False: the core's lock serialises every
    # use of the connection, so any thread may make the call.
    return sqlite3.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )


def columns(cur: sqlite3.Cursor, table: str) -> list[tuple[str, str, int]]:
    rows = cur.execute(f"PRAGMA table_info({table})").fetchall()  # table: a constant
    return [(str(row[1]), str(row[2]).upper(), int(bool(row[5]))) for row in rows]


def check_schema(cur: sqlite3.Cursor, db: str, *, create: bool) -> bool:
    """Check fixseq's tables in ``db`` (inside a transaction); create them if asked.

    Returns:
        True if the tables exist (now), False if they do not and ``create`` is False.

    Raises:
        CorruptStoreError: A ``fixseq_sessions`` or ``fixseq_meta`` that fixseq did not make.
        SeqStoreError: The tables were made by a newer format version.
    """
    found = dict(cur.execute(FIND_TABLES).fetchall())
    if not found:
        if create:
            cur.execute(CREATE_META)
            cur.execute(
                "INSERT INTO fixseq_meta (key, value) VALUES ('format_version', ?1)",
                (str(FORMAT_VERSION),),
            )
            cur.execute(CREATE_SESSIONS)
        return create
    if found.get("fixseq_meta") != "table" or columns(cur, "fixseq_meta") != META_COLUMNS:
        raise CorruptStoreError(
            f"SQLite database {db} has a {' and a '.join(sorted(found))} that fixseq did not "
            "make (no fixseq_meta table with a format version); fixseq leaves it alone"
        )
    rows = cur.execute("SELECT value FROM fixseq_meta WHERE key = 'format_version'").fetchall()
    text = rows[0][0] if rows else None
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and int(text) >= 1):
        raise CorruptStoreError(f"SQLite database {db}: fixseq_meta holds no valid format_version")
    if int(text) > FORMAT_VERSION:
        raise SeqStoreError(
            f"SQLite database {db} was made by a newer fixseq (format version {text}); this "
            f"fixseq reads format version {FORMAT_VERSION} and leaves the database unchanged: "
            "upgrade fixseq"
        )
    if found.get("fixseq_sessions") != "table":
        raise CorruptStoreError(
            f"SQLite database {db} has fixseq_meta but no fixseq_sessions table (dropped?); "
            "fixseq never starts its sessions again at 1 on its own"
        )
    if columns(cur, "fixseq_sessions") != SESSION_COLUMNS:
        raise CorruptStoreError(
            f"SQLite database {db}: the fixseq_sessions table does not have fixseq's columns"
        )
    return True


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (it does after some errors)


def set_wal(cur: sqlite3.Cursor, busy_timeout: float) -> None:
    """Put the database in WAL mode, waiting up to busy_timeout for other connections.

    SQLite answers a journal-mode change that meets another connection's
    lock with SQLITE_BUSY at once, without its busy handler (several
    processes opening a new database together all try it), so the wait is
    here: short, growing pauses until the deadline.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if error_code(exc) not in LOCKED_CODES or time.monotonic() >= deadline:
                raise
        _sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.05)


def format_created(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def parse_created(created: object, db: str, session: str) -> datetime.datetime:
    """Return a row's ``created`` text as an aware UTC datetime.

    Raises:
        CorruptStoreError: It is not ISO 8601 text with a UTC offset.
    """
    try:
        if not isinstance(created, str):
            raise TypeError(type(created).__name__)
        value = datetime.datetime.fromisoformat(created)
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("no UTC offset")
    except (TypeError, ValueError) as exc:
        raise CorruptStoreError(
            f"SQLite database {db}: session {show(session)} holds created = "
            f"{created!r}, not an ISO 8601 time with a UTC offset"
        ) from exc
    return value.astimezone(datetime.timezone.utc)
