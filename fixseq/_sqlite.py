"""The SQLite store: many sessions in one database file, shared by threads and processes.

The database holds the truth. A :class:`SqliteSeqStore` keeps no counter of its
own (it is a shared store of the core, ``_shared = True``): each call is one
transaction on the database, so any number of connections, threads and
processes can use one session of one file and together hand out each outbound
number exactly once. The layout, the opening checks and the error boundary are
in :mod:`fixseq._sqlite_db`.

Group commit: all stores of one process on one database file (same real path,
same ``synchronous`` and ``busy_timeout``) share one connection, a
:class:`_Database`. Concurrent calls on them queue on its
:class:`~fixseq._group.Batcher`; one leader runs every queued call in one
``BEGIN IMMEDIATE ... COMMIT``, so one commit (one device sync) acknowledges
them all, and each caller gets the result of its own statement.
"""

from __future__ import annotations

import datetime
import functools
import os
import sqlite3
import threading
import weakref
from typing import TYPE_CHECKING

from ._core import SeqCounters
from ._group import Batcher
from ._protocols import MAX_SEQ_NUM
from ._rules import check_bool, check_session_name, utc_now
from ._sqlite_db import (
    BUMP_GENERATION,
    DEFAULT_BUSY_TIMEOUT,
    GENERATION_PREFIX,
    GIVE_BACK,
    INSERT_SESSION,
    RETURNING,
    SELECT,
    SELECT_BLOCK,
    SELECT_GENERATION,
    UPDATES,
    Boundary,
    check_counters,
    check_existing,
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
from ._sqlite_read import list_sessions as list_sessions
from ._sqlite_read import read_session_states as read_session_states
from ._twins import AsyncAdminShell, open_in_thread
from .errors import CorruptStoreError, SeqStoreError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import Self

__all__ = ["AsyncSqliteSeqStore", "SqliteSeqStore", "list_sessions", "read_session_states"]

# UPDATE ... RETURNING arrived in SQLite 3.35; older libraries UPDATE then SELECT,
# inside the same BEGIN IMMEDIATE transaction, which is just as atomic.
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)

_State = tuple[int, int, datetime.datetime]
#: One call in a group: the store, the operation, its number and (give_back) a second one.
_Item = tuple["SqliteSeqStore", str, int, int]
_getpid = os.getpid  # one name, so a test can play a forked child


def _commit(cur: sqlite3.Cursor) -> None:
    """Commit the group's transaction (one name, so a test can make it fail)."""
    cur.execute("COMMIT")


# -- one database file's connection and group commit, shared by its stores --------------


class _Database:
    """One database file's connection in this process, and the group commit over it.

    Every store of the process on the file (with the same ``synchronous`` and
    ``busy_timeout``) uses it; the last one to close closes the connection.
    ``mutex`` serialises the connection's use: a group's transaction, or a
    store opening its session.
    """

    def __init__(self, db: str, synchronous: str, busy_timeout: float) -> None:
        self.boundary = Boundary(db, busy_timeout)
        self.mutex = threading.Lock()
        self.users = 0
        # Commits of this process on the connection: PRAGMA data_version does not
        # count them, and other stores of the process share the connection.
        self.commits = 0
        self.batcher: Batcher[_Item, _State | None] = Batcher(self._run)
        with self.boundary:
            self.conn = connect(db, writable=True, busy_timeout=busy_timeout)
            try:
                cur = self.cur = self.conn.cursor()
                cur.execute(f"PRAGMA synchronous = {synchronous}")  # one of four checked words
                if synchronous in ("FULL", "EXTRA"):
                    # macOS's fsync stops short of the drive's cache; F_FULLFSYNC does not.
                    cur.execute("PRAGMA fullfsync = ON")
                    cur.execute("PRAGMA checkpoint_fullfsync = ON")
                # A hostile file's schema runs no functions:
                cur.execute("PRAGMA trusted_schema = OFF")
                cur.execute("PRAGMA cell_size_check = ON")  # damaged pages are caught sooner
            except BaseException:
                self.conn.close()
                raise

    def _run(self, items: Sequence[_Item]) -> list[_State | BaseException | None]:
        """Run a group of calls in one transaction; a failed commit fails them all."""
        cur = self.cur
        write = any(op != "read" for _, op, _, _ in items)
        isolate = len(items) > 1 and write
        outcomes: list[_State | BaseException | None] = []
        with self.mutex, self.boundary:
            if not write and len(items) == 1:
                # One SELECT in autocommit mode is one read transaction.
                store, op, seq_num, extra = items[0]
                return [store._do(cur, op, seq_num, extra)]
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                for store, op, seq_num, extra in items:
                    # A savepoint per call in a group: a call that fails on its own
                    # (its row vanished or holds garbage) is undone alone, and the
                    # others still commit. A sqlite3 error fails the whole group.
                    if isolate:
                        cur.execute("SAVEPOINT fixseq_call")
                    try:
                        outcomes.append(store._do(cur, op, seq_num, extra))
                    except SeqStoreError as exc:
                        if not isolate:
                            raise
                        cur.execute("ROLLBACK TO fixseq_call")
                        outcomes.append(exc)
                    if isolate:
                        cur.execute("RELEASE fixseq_call")
                self.commits += 1  # before COMMIT: a commit that fails may have landed
                _commit(cur)
            except BaseException:
                rollback(self.conn)
                raise
        return outcomes

    def close(self) -> None:
        with self.mutex, self.boundary:
            self.conn.close()


# The open databases of this process by (real path, synchronous, busy_timeout, pid).
# Weak values: stores dropped without close() take their database with them.
_DATABASES: weakref.WeakValueDictionary[tuple[str, str, float, int], _Database] = (
    weakref.WeakValueDictionary()
)
_DATABASES_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    global _DATABASES_LOCK
    _DATABASES_LOCK = threading.Lock()  # a thread of the parent may have held it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _acquire(db: str, synchronous: str, busy_timeout: float) -> _Database:
    key = (os.path.realpath(db), synchronous, busy_timeout, _getpid())
    with _DATABASES_LOCK:
        database = _DATABASES.get(key)
        if database is None:
            database = _DATABASES[key] = _Database(db, synchronous, busy_timeout)
        database.users += 1
        return database


def _release(database: _Database) -> None:
    with _DATABASES_LOCK:
        database.users -= 1
        if database.users:
            return
        for key, value in list(_DATABASES.items()):
            if value is database:
                del _DATABASES[key]
    database.close()


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

    Besides the errors each method documents, any call may raise
    :class:`~fixseq.StoreLockedError` (the database stayed locked for
    ``busy_timeout``), :class:`~fixseq.CorruptStoreError` (the session's row
    went out of range or was deleted) or :class:`~fixseq.StoreIOError` (the
    disk failed). Such a call was rolled back and acknowledged nothing (no
    number was handed out), and the store is not stopped: the next call
    tries the database again. In a ``fork()``ed child of the process that
    opened it, every call raises :class:`~fixseq.StoreForkedError` and
    ``close()`` leaves the connection alone (it is still the parent's).

    Group commit: the stores of one process on one database share one
    connection, and calls made at the same time (from threads, or from
    async tasks through the twin) share one transaction and its commit. Each
    still gets its own exact result only after that commit; a failed commit
    fails every call in it.

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
            session. Only a missing file is created: an existing file of 0
            bytes is damage (:class:`~fixseq.CorruptStoreError`) either way.
        busy_timeout: Seconds a call waits for another connection's
            transaction before it raises :class:`~fixseq.StoreLockedError`.
        reserve: How many outbound numbers one commit reserves (default 1:
            none held back). With ``reserve=K`` the store advances the stored
            counter by K in one commit and hands the block out from memory;
            after a crash the session resumes above the block (a gap of at
            most K numbers, never a reused one), and :meth:`close`,
            :meth:`set_next_out` and :meth:`reset` give the unused part back.
            Each store holds its own block, so several writers of one session
            get unique numbers but not in order: use it with one writer per
            session. Inbound is never reserved.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``session`` or ``path`` is empty or contains NUL;
            ``synchronous`` is not one of the four levels; ``busy_timeout`` is
            negative or not finite; ``reserve`` is outside ``1..MAX_SEQ_NUM``
            (an [`InvalidSeqNumError`][fixseq.InvalidSeqNumError]).
        CorruptStoreError: The file is empty (0 bytes), is not a SQLite
            database or is damaged (text that is not UTF-8 included); it has a
            ``fixseq_sessions`` table fixseq did not make; or the session's row
            holds values out of range.
        StoreLockedError: The database stayed locked for ``busy_timeout``.
        StoreIOError: The file cannot be created or opened (a missing or
            read-only directory, no permission); the message names the
            database, ``errno`` is the OS's where it gave one, and the cause
            is chained.
        SeqStoreError: ``create=False`` and the session does not exist; the
            path is a dangling symbolic link (nothing is created through it);
            or the database was made by a newer format version.
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
        reserve: int = 1,
    ) -> None:
        db = check_path(path)
        session = check_session_name(session)
        level = check_synchronous(synchronous)
        busy_timeout = check_timeout(busy_timeout)
        check_bool(create, "create")
        super().__init__()
        self._set_reserve(reserve)
        self._db = db
        self._session = session
        self._synchronous = level
        self._boundary = Boundary(db, busy_timeout)
        self._created_text = ""
        self._created_dt = self._created
        self._generation_key = GENERATION_PREFIX + session
        # The reserved block's witness: the generation it was reserved under, and
        # (data_version, own commits) when the row last matched it (None: re-read).
        self._block_generation: object = None
        self._block_stamp: tuple[int, int] | None = None
        with self._boundary:
            if not check_existing(db):
                if not create:
                    raise SeqStoreError(
                        f"SQLite database {db} does not exist and create=False: fixseq will "
                        f"not start session {show(session)} again at 1"
                    )
                create_file(db)
        database = self._database = _acquire(db, level, busy_timeout)
        self._conn = database.conn
        try:
            with database.mutex, self._boundary:
                state = self._open(database.cur, create)
        except BaseException:
            _release(database)
            raise
        self._restore(*state)

    def _open(self, cur: sqlite3.Cursor, create: bool) -> _State:
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
        return self._submit(op, seq_num, 0)

    def _give_back(self, reserved_end: int, next_out: int) -> None:
        self._submit("give_back", reserved_end - 1, next_out - 1)

    def _block_moved(self, block_end: int) -> bool:
        # PRAGMA data_version reads no page: it changes exactly when another
        # connection committed. With our own commit counter unchanged too,
        # nothing was written since the row last matched our block.
        database = self._database
        with database.mutex, self._boundary:
            cur = database.cur
            stamp = (int(cur.execute("PRAGMA data_version").fetchone()[0]), database.commits)
            if stamp == self._block_stamp:
                return False
            rows = cur.execute(SELECT_BLOCK, (self._session, self._generation_key)).fetchall()
            if not rows or rows[0] != (block_end - 1, self._block_generation):
                return True
            self._block_stamp = stamp  # read before the row: a later commit changes it
            return False

    def _submit(self, op: str, seq_num: int, extra: int) -> _State | None:
        # (A forked child never gets here: the core refuses its every call, so the
        # connection, which must not cross a fork(), is never used nor closed there.)
        # Joins the group commit of every store of this process on the database.
        return self._database.batcher.submit((self, op, seq_num, extra))

    def _do(self, cur: sqlite3.Cursor, op: str, seq_num: int, extra: int) -> _State | None:
        """Do ``op`` inside the group's open transaction; return the state after it."""
        if op == "read":
            return self._state(cur.execute(SELECT, (self._session,)).fetchall())
        if op == "give_back":  # compare-and-set: only if nobody advanced past our block
            params = (self._session, seq_num, extra, self._generation_key, self._block_generation)
            cur.execute(GIVE_BACK, params)
            return None
        if op in ("reset", "set_next_out"):  # a store holding a block must see these
            cur.execute(BUMP_GENERATION, (self._generation_key,))
        state = self._write(cur, op, seq_num)
        if op == "next_out" and seq_num > 1 and state is not None:
            # A reserved block: what _block_moved compares the row with. The
            # first check after it reads the row once (our own commit counts).
            rows = cur.execute(SELECT_GENERATION, (self._generation_key,)).fetchall()
            self._block_generation = rows[0][0] if rows else None
            self._block_stamp = None
        return state

    def _write(self, cur: sqlite3.Cursor, op: str, seq_num: int) -> _State | None:
        """Do ``op`` inside the open write transaction; return the state after it."""
        if op == "next_out":
            value: object = MAX_SEQ_NUM
        elif op == "reset":
            value = format_created(utc_now())
        else:  # observed_in(n) stores last_in = n; set_next_*(n) store n - 1
            value = seq_num if op == "observed_in" else seq_num - 1
        params: tuple[object, ...] = (self._session, value)
        if op == "next_out":
            params += (seq_num,)  # advance by seq_num numbers (a reservation block)
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
            if state[0] - 1 + seq_num <= MAX_SEQ_NUM:  # pragma: no cover - range checked
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
        next_out, next_in = check_counters(self._db, self._session, last_out, last_in)
        if created != self._created_text:
            self._created_dt = parse_created(created, self._db, self._session)
            self._created_text = str(created)
        return next_out, next_in, self._created_dt

    def _release(self) -> None:
        _release(self._database)

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
        reserve: As :class:`SqliteSeqStore`.

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
        reserve: int = 1,
    ) -> None:
        super().__init__(
            SqliteSeqStore(
                path,
                session,
                synchronous=synchronous,
                create=create,
                busy_timeout=busy_timeout,
                reserve=reserve,
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
        reserve: int = 1,
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
            reserve=reserve,
        )
        return cls._over(await open_in_thread(opener, SqliteSeqStore.close))

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
