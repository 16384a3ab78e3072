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

Every sqlite3 (or OS) error, and text in the file that is not UTF-8, is
translated at one boundary, :class:`Boundary`, which chains the original.
"""

from __future__ import annotations

import datetime
import errno
import math
import os
import sqlite3
import time
import urllib.parse
from typing import TYPE_CHECKING, Final

from ._paths import check_not_dangling, discard, io_error, publish, sync_dir, temp_path
from ._protocols import MAX_SEQ_NUM
from ._sqlite_wal import check_wal_not_lost
from .errors import (
    CorruptStoreError,
    SeqStoreError,
    StoreIOError,
    StoreLockedError,
    repair_steps,
)

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
    # ?3: how many numbers (1, or a reservation block); none if fewer are left.
    "next_out": "UPDATE fixseq_sessions SET last_out = last_out + ?3 WHERE session = ?1 "
    "AND typeof(last_out) = 'integer' AND last_out >= 0 AND last_out <= ?2 - ?3",
    "observed_in": "UPDATE fixseq_sessions SET last_in = ?2 WHERE session = ?1 "
    "AND typeof(last_in) = 'integer' AND last_in >= 0 AND last_in < ?2",
    "reset": "UPDATE fixseq_sessions SET last_out = 0, last_in = 0, created = ?2 "
    "WHERE session = ?1",
    "set_next_out": "UPDATE fixseq_sessions SET last_out = ?2 WHERE session = ?1",
    "set_next_in": "UPDATE fixseq_sessions SET last_in = ?2 WHERE session = ?1",
}
# A session's generation: a counter in fixseq_meta (key "generation:" + the session name)
# that every set_next_out and reset bumps in its own transaction. A store holding a
# reserved block compares it (with last_out) to see a set that wrote the value the row
# already held. A missing key (no set yet, or a database written by an older fixseq) is
# generation NULL. No new table or column: the format stays version 1.
GENERATION_PREFIX: Final = "generation:"
BUMP_GENERATION: Final = (
    "INSERT OR REPLACE INTO fixseq_meta (key, value) SELECT ?1, CAST(coalesce("
    "(SELECT CAST(value AS INTEGER) FROM fixseq_meta WHERE key = ?1), 0) + 1 AS TEXT)"
)
SELECT_GENERATION: Final = "SELECT value FROM fixseq_meta WHERE key = ?1"
# What a reserved block is checked against: the row's last_out and its generation.
SELECT_BLOCK: Final = (
    "SELECT last_out, (SELECT value FROM fixseq_meta WHERE key = ?2) "
    "FROM fixseq_sessions WHERE session = ?1"
)
# Returning a reservation's unused numbers: only if last_out is still the block's end
# and no set or reset (even to that same value) ran since the block was reserved.
GIVE_BACK: Final = (
    "UPDATE fixseq_sessions SET last_out = ?3 WHERE session = ?1 AND last_out = ?2 "
    "AND (SELECT value FROM fixseq_meta WHERE key = ?4) IS ?5"
)

_sleep = time.sleep  # one name, so a test can see the waits


# -- the one error boundary ---------------------------------------------------

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26
LOCKED_CODES: Final = frozenset({_SQLITE_BUSY, _SQLITE_LOCKED})
# CONSTRAINT and MISMATCH can only come from a row someone else wrote out of range:
# every value fixseq writes was validated first.
_CORRUPT_CODES: Final = frozenset({_SQLITE_CORRUPT, 19, 20, _SQLITE_NOTADB})
# PERM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL, NOLFS: the file system said no.
_IO_CODES: Final = frozenset({3, 8, 10, 13, 14, 15, 22})
# The errno a StoreIOError carries for SQLite's own refusals (SQLite reports no errno).
_ERRNOS: Final = {3: errno.EACCES, 8: errno.EACCES, 10: errno.EIO, 13: errno.ENOSPC}
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
    """Return the fixseq error for a sqlite3, OS or UTF-8 decoding error on database ``db``."""
    if isinstance(exc, OSError):
        return io_error(exc, "use the SQLite database", db)
    if isinstance(exc, UnicodeDecodeError):
        # SQLite hands back TEXT as stored; Python decodes it. Only a damaged byte (in the
        # schema, or a value someone else wrote) is not UTF-8: fixseq writes none.
        return CorruptStoreError(
            f"SQLite database {db} is damaged: it holds text that is not UTF-8 where fixseq "
            f"reads its schema or its tables ({exc}); fixseq never starts a session again at "
            "1 on its own; "
            f"{repair_steps(db, 'sqlite')}"
        )
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
            f"range ({exc}); fixseq never starts a session again at 1 on its own; "
            f"{repair_steps(db, 'sqlite')}"
        )
    if code in _IO_CODES:
        return StoreIOError(_ERRNOS.get(code or 0), f"SQLite database {db}: {exc}")
    return SeqStoreError(f"SQLite database {db}: {exc}")


class Boundary:
    """Context manager: a sqlite3, OS or decoding error inside becomes a SeqStoreError (chained)."""

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
        if isinstance(exc, (sqlite3.Error, OSError, UnicodeDecodeError)) and not isinstance(
            exc, SeqStoreError
        ):
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


def check_existing(db: str) -> bool:
    """Whether ``db`` exists as a file that may hold a database (else it is missing).

    Raises:
        SeqStoreError: ``db`` is a dangling symbolic link.
        CorruptStoreError: ``db`` is a file of 0 bytes: an emptied database, never a
            new one (fixseq's own creation never leaves one, see :func:`create_file`).
        StoreIOError: The OS refused to look at it.
    """
    check_not_dangling(db, "SQLite database")
    try:
        size = os.stat(db).st_size
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise io_error(exc, "open the SQLite database", db) from exc
    if size == 0 and os.path.isfile(db):
        raise CorruptStoreError(
            f"SQLite database {db} is a file of 0 bytes: emptied (truncated, or copied while "
            "being written), not a new database; fixseq never starts its sessions again at 1 "
            "on its own. Restore it from a backup, or remove it to start every session anew"
        )
    return True


def create_file(db: str) -> None:
    """Create the database, 0600, with fixseq's empty tables, if it is missing; atomically.

    The database is built under a hidden temporary name and linked into place
    only when whole and durable, so no opener (nor a restart after a crash) can
    ever see a partly made one at ``db``: an existing 0-byte file is always
    damage. A crash leaves at most a ``.NAME.*.fixseq-tmp`` file that is never
    read. If another process creates ``db`` first, theirs is kept. SQLite gives
    the -wal and -shm files the database file's permissions, so a file made
    0600 here keeps all three private without touching the process-wide umask.

    Raises:
        StoreIOError: The OS refused (the message names ``db``); nothing is left behind.
    """
    if os.path.lexists(db):
        return
    directory, temp = temp_path(db)
    pending = False  # the temporary file exists and still has its name
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        pending = True
        try:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask took away
        finally:
            os.close(fd)
        _make_tables(temp)
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if publish(temp, db):
            pending = False
        if pending:
            discard(temp)
            pending = False
        # Also when another opener made it: it may have died before syncing the directory.
        sync_dir(directory)
    except OSError as exc:
        raise io_error(exc, "create the SQLite database", db) from exc
    finally:
        if pending:
            discard(temp)


def _make_tables(temp: str) -> None:
    """Make fixseq's tables in the new, private file ``temp`` (no -wal: rollback journal)."""
    conn = connect(temp, writable=True, busy_timeout=0.0)
    try:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            check_schema(cur, temp, create=True)
            cur.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
    finally:
        conn.close()


def connect(
    db: str, *, writable: bool, busy_timeout: float, immutable: bool = False
) -> sqlite3.Connection:
    """Open ``db`` (never creating it: fixseq creates the file itself, 0600).

    ``immutable``: read the main file alone, with no locking and no -wal or
    -shm (SQLite's ``immutable=1``); only for a read-only look at a database
    no connection has open (see :func:`connect_read_only`).

    Raises:
        CorruptStoreError: The ``-shm`` records committed frames that the ``-wal``
            no longer holds (see :func:`fixseq._sqlite_wal.check_wal_not_lost`).
        sqlite3.Error: As ``sqlite3.connect``.
    """
    check_wal_not_lost(db)  # SQLite would open a database with a lost -wal at an older state
    query = "?mode=rw" if writable else "?mode=ro&immutable=1" if immutable else "?mode=ro"
    uri = "file:" + urllib.parse.quote(os.fsencode(db)) + query
    # isolation_level=None: no implicit transactions; fixseq writes BEGIN and
    # COMMIT itself. check_same_thread=False: the database's mutex serialises
    # every use of the connection (a group's leader, or a store opening), so
    # any thread may make the call.
    return sqlite3.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )


def connect_read_only(db: str, busy_timeout: float) -> sqlite3.Connection:
    """Open ``db`` to read only: no write, no journal-mode change, nothing left behind.

    A WAL database read with ``mode=ro`` needs its -shm and -wal files, and
    SQLite creates them if they are missing and leaves them behind, owned by
    the reader (an operator's ``fixseq show`` could then lock the engine's
    user out of them). So a WAL database with neither file (no connection has
    it open: the last one to close removed them, after writing everything
    back into the main file) is read as SQLite's ``immutable=1``: the main
    file alone, nothing created. Otherwise (an engine has it open, or a crash
    left them) it is read through its -wal with ``mode=ro``.

    Raises:
        sqlite3.Error: As ``sqlite3.connect``; the caller's boundary translates it.
    """
    with open(db, "rb") as file:
        header = file.read(20)
    in_wal_mode = len(header) == 20 and header[18] == 2  # the "read version" byte: 2 is WAL
    quiet = not any(os.path.lexists(db + suffix) for suffix in ("-wal", "-shm"))
    return connect(db, writable=False, busy_timeout=busy_timeout, immutable=in_wal_mode and quiet)


def read_only_error(exc: sqlite3.Error, db: str) -> SeqStoreError | None:
    """The clear error for a read-only open that SQLite refused for want of a -shm file."""
    if error_code(exc) != 14 or not os.path.lexists(db + "-wal") or os.path.lexists(db + "-shm"):
        return None
    return StoreIOError(
        errno.EACCES,
        f"SQLite database {db} cannot be read: its -wal file is there without its -shm file "
        f"(left by a crash?), which this user may not create in {os.path.dirname(db)} ({exc}); "
        "run the command as the database's owner, or let its engine open it once",
    )


def check_counters(db: str, session: str, last_out: object, last_in: object) -> tuple[int, int]:
    """Return a row's (next_out, next_in), checking both stored values.

    Raises:
        CorruptStoreError: A value is not an integer in 0..MAX_SEQ_NUM.
    """
    for name, value in (("last_out", last_out), ("last_in", last_in)):
        if type(value) is not int or not 0 <= value <= MAX_SEQ_NUM:
            raise CorruptStoreError(
                f"SQLite database {db}: session {show(session)} holds "
                f"{name} = {value!r}, outside 0..{MAX_SEQ_NUM}"
            )
    assert isinstance(last_out, int) and isinstance(last_in, int)
    return last_out + 1, last_in + 1


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
