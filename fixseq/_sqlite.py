"""The SQLite store: many sessions in one database file, shared by threads and processes.

The database holds the truth. A :class:`SqliteSeqStore` keeps no counter of its
own (it is a shared store of the core, ``_shared = True``): each call is one
transaction on the database, so any number of connections, threads and
processes can use one session of one file and together hand out each outbound
number exactly once. The layout, the opening checks and the error boundary are
in :mod:`fixseq._sqlite_db`.
"""

from __future__ import annotations

import datetime
import functools
import os
import sqlite3
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._core import SeqCounters, check_session_name, utc_now
from ._protocols import MAX_SEQ_NUM
from ._sqlite_db import (
    DEFAULT_BUSY_TIMEOUT,
    INSERT_SESSION,
    RETURNING,
    SELECT,
    UPDATES,
    Boundary,
    check_path,
    check_schema,
    check_synchronous,
    check_timeout,
    connect,
    create_file,
    format_created,
    parse_created,
    rollback,
    set_wal,
    show,
)
from ._twins import AsyncAdminShell, offload
from .errors import CorruptStoreError, SeqStoreError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["AsyncSqliteSeqStore", "SqliteSeqStore", "list_sessions"]

# UPDATE ... RETURNING arrived in SQLite 3.35; older libraries UPDATE then SELECT,
# inside the same BEGIN IMMEDIATE transaction, which is just as atomic.
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)

_State = tuple[int, int, datetime.datetime]
_getpid = os.getpid  # one name, so a test can play a forked child


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
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        db = check_path(path)
        session = check_session_name(session)
        level = check_synchronous(synchronous)
        busy_timeout = check_timeout(busy_timeout)
        if not isinstance(create, bool):
            raise TypeError(f"create must be a bool, not {type(create).__name__}")
        super().__init__()
        self._db = db
        self._session = session
        self._synchronous = level
        self._boundary = Boundary(db, busy_timeout)
        self._pid = _getpid()
        self._created_text = ""
        self._created_dt = self._created
        with self._boundary:
            if create:
                create_file(db)
            elif not os.path.exists(db):
                raise SeqStoreError(
                    f"SQLite database {db} does not exist and create=False: fixseq will not "
                    f"start session {show(session)} again at 1"
                )
            self._conn = connect(db, writable=True, busy_timeout=busy_timeout)
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
        # A read pass first: opening an existing session takes no write lock. Only
        # if the table or the row is missing (and create is True) does a write
        # pass, which checks again under the lock, create them.
        state = None
        for write in (False, True) if create else (False,):
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                state = self._prepare(cur, create=create, write=write)
                cur.execute("COMMIT")
            except BaseException:
                rollback(self._conn)
                raise
            if state is not None:
                break
        assert state is not None
        # Only a database known to be fixseq's (now) may change journal mode.
        set_wal(cur, self._boundary.busy_timeout)
        return state

    def _prepare(self, cur: sqlite3.Cursor, *, create: bool, write: bool) -> _State | None:
        """Check the tables and the row (creating them in a write pass); None: needs one."""
        if not check_schema(cur, self._db, create=write):
            if not create:
                raise SeqStoreError(
                    f"SQLite database {self._db} has no fixseq sessions and create=False: "
                    f"fixseq will not start session {show(self._session)} at 1"
                )
            return None
        rows = cur.execute(SELECT, (self._session,)).fetchall()
        if not rows:
            if not create:
                raise SeqStoreError(
                    f"SQLite database {self._db} has no session {show(self._session)} "
                    "and create=False: fixseq will not start it at 1"
                )
            if not write:
                return None
            rows = [(0, 0, format_created(utc_now()))]
            cur.execute(INSERT_SESSION, (self._session, *rows[0]))
        return self._state(rows)

    # -- the shared-store hooks of the core --------------------------------------

    def _apply(self, op: str, seq_num: int) -> _State | None:
        if _getpid() != self._pid:
            # SQLite's rule: a connection must not cross a fork(). Using it in the
            # child could corrupt the database the parent is still using.
            raise SeqStoreError(
                f"SQLite database {self._db}: this store was opened in process {self._pid} "
                f"and cannot be used in process {_getpid()} (after a fork); open a new one"
            )
        cur = self._cur
        with self._boundary:
            if op == "read":
                # One SELECT in autocommit mode is one read transaction.
                return self._state(cur.execute(SELECT, (self._session,)).fetchall())
            cur.execute("BEGIN IMMEDIATE")
            try:
                state = self._write(cur, op, seq_num)
                cur.execute("COMMIT")
            except BaseException:
                rollback(self._conn)
                raise
            return state

    def _write(self, cur: sqlite3.Cursor, op: str, seq_num: int) -> _State | None:
        """Do ``op`` inside the open write transaction; return the state after it."""
        if op == "next_out":
            value: object = MAX_SEQ_NUM
        elif op == "reset":
            value = format_created(utc_now())
        else:  # observed_in(n) stores last_in = n; set_next_*(n) store n - 1
            value = seq_num if op == "observed_in" else seq_num - 1
        params = (self._session, value)
        if _HAS_RETURNING:
            rows = cur.execute(UPDATES[op] + RETURNING, params).fetchall()
        else:
            cur.execute(UPDATES[op], params)
            rows = cur.execute(SELECT, params[:1]).fetchall() if cur.rowcount > 0 else []
        if rows:
            return self._state(rows)
        # Nothing matched: the counter was exhausted, observed_in was below the
        # mark, or the row is gone (which _state reports).
        state = self._state(cur.execute(SELECT, (self._session,)).fetchall())
        if op == "next_out":
            if state[0] <= MAX_SEQ_NUM:  # pragma: no cover - the row passed its range check
                raise CorruptStoreError(f"SQLite database {self._db}: next_out did not advance")
            return None
        return state

    def _state(self, rows: list[tuple[object, ...]]) -> _State:
        """Turn the session's row into (next_out, next_in, created), checking every value."""
        if not rows:
            raise CorruptStoreError(
                f"SQLite database {self._db}: the row of session {show(self._session)} is "
                "gone (deleted by another process?); fixseq never starts it again at 1 on its own"
            )
        last_out, last_in, created = rows[0]
        for name, value in (("last_out", last_out), ("last_in", last_in)):
            if type(value) is not int or not 0 <= value <= MAX_SEQ_NUM:
                raise CorruptStoreError(
                    f"SQLite database {self._db}: session {show(self._session)} holds "
                    f"{name} = {value!r}, outside 0..{MAX_SEQ_NUM}"
                )
        if created != self._created_text:
            self._created_dt = parse_created(created, self._db, self._session)
            self._created_text = str(created)
        assert isinstance(last_out, int) and isinstance(last_in, int)
        return last_out + 1, last_in + 1, self._created_dt

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
        return f"<{type(self).__name__} {self._db!r} session={show(self._session)} {state}>"


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
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
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
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
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
    db = check_path(path)
    if not os.path.exists(db):
        raise SeqStoreError(f"SQLite database {db} does not exist")
    boundary = Boundary(db, DEFAULT_BUSY_TIMEOUT)
    with boundary:
        # Read-write (never create): a read-only connection to a WAL database
        # would leave its -wal and -shm files behind.
        writable = os.access(db, os.W_OK)
        conn = connect(db, writable=writable, busy_timeout=DEFAULT_BUSY_TIMEOUT)
        try:
            cur = conn.cursor()
            cur.execute("BEGIN")
            try:
                found = check_schema(cur, db, create=False)
                query = "SELECT session FROM fixseq_sessions"
                rows = cur.execute(query).fetchall() if found else []
            finally:
                rollback(conn)  # read only: nothing to commit
        finally:
            conn.close()
    names = [row[0] for row in rows]
    if not all(isinstance(name, str) for name in names):
        raise CorruptStoreError(f"SQLite database {db}: fixseq_sessions holds a non-text name")
    return sorted(names)
