"""PostgreSQL store: a session's counters in one row that several processes and hosts share.

For an active/standby pair of engines on two hosts (or any number of processes)
that must continue from the exact numbers the other reached. Needs the extra
``fixseq[postgres]`` (psycopg 3 and psycopg-pool); ``import fixseq`` alone
never imports psycopg.

Every call is ONE statement in autocommit, ``UPDATE ... RETURNING`` on the
session's row (:meth:`PostgresSeqStore._apply`), so the server, not this
process, holds the truth: a number is handed out only after the server has
committed the advance past it, two callers anywhere never get the same
number, and the inbound mark never regresses.

The table (default ``fixseq_sessions``), format 1::

    id          bigint  identity PRIMARY KEY     (a replica identity for logical replication)
    session     text COLLATE "C" NOT NULL       the session's name, any length; unique
    last_out    bigint  NOT NULL CHECK (>= 0)    next_out - 1
    last_in     bigint  NOT NULL CHECK (>= 0)    next_in - 1
    created_at  timestamptz NOT NULL             clock_timestamp() of creation / last reset
    EXCLUDE USING hash (session WITH =)

The names are kept unique by a hash index (an exclusion constraint), because a
btree entry cannot exceed about 2.7 kB and a session name may be any length.
The table's ``COMMENT`` is the format marker (``fixseq sessions table,
format 1``): a table without it is not touched, and one of a newer format
raises a clear error rather than being altered.
"""

from __future__ import annotations

import datetime
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

from ._core import SeqCounters
from ._protocols import MAX_SEQ_NUM
from ._twins import AsyncAdminShell, offload
from .errors import CorruptStoreError, SeqStoreError, StoreIOError

try:
    import psycopg
    import psycopg.errors
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - exercised in a child process by the tests
    raise ImportError(
        "fixseq.postgres needs psycopg 3: install the extra with  pip install 'fixseq[postgres]'"
    ) from exc

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TypeAlias

    from psycopg_pool import ConnectionPool
    from typing_extensions import Self

    #: What the store connects through: a libpq connection string or URL, or an
    #: open ``psycopg_pool.ConnectionPool`` the application already has.
    ConnInfo: TypeAlias = str | ConnectionPool[Any]

__all__ = [
    "AsyncPostgresSeqStore",
    "PostgresSeqStore",
    "create_schema",
    "list_sessions",
]

DEFAULT_TABLE: Final = "fixseq_sessions"
FORMAT_VERSION: Final = 1
_MARKER = "fixseq sessions table, format "
_MARKER_RE = re.compile(r"fixseq sessions table, format ([0-9]+)")
_IDENT = "[A-Za-z_][A-Za-z0-9_]{0,62}"
_TABLE_RE = re.compile(rf"(?:({_IDENT})\.)?({_IDENT})")
_UTC = datetime.timezone.utc
_State = tuple[int, int, datetime.datetime]

# -- validation ------------------------------------------------------------------------


def _check_session(session: object) -> None:
    """Check a session name: a non-empty str without NUL that encodes to UTF-8."""
    if not isinstance(session, str):
        raise TypeError(f"session must be a str, not {type(session).__name__}")
    if not session:
        raise ValueError("session must be a non-empty str")
    if "\x00" in session:
        raise ValueError("session must not contain NUL (PostgreSQL text cannot hold it)")
    try:
        session.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"session must be valid Unicode text: {exc}") from None


class _Table:
    """A validated table name: ``table`` or ``schema.table``, always quoted in SQL."""

    def __init__(self, table: object) -> None:
        if not isinstance(table, str):
            raise TypeError(f"table must be a str, not {type(table).__name__}")
        match = _TABLE_RE.fullmatch(table)
        if match is None:
            raise ValueError(
                f"table must be an identifier [A-Za-z_][A-Za-z0-9_]* of at most 63 characters, "
                f"optionally schema.table; got {table!r}"
            )
        self.name = table
        schema, name = match.groups()
        self.ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
        # The quoted form, for to_regclass(): resolved by the same search_path rules as
        # the statements, and with the same case (a quoted name is case-sensitive).
        self.regclass = self.ident.as_string(None)


class _Queries:
    """The statements for one table, rendered once to strings (psycopg prepares them)."""

    def __init__(self, table: _Table) -> None:
        def render(text: str) -> str:
            return sql.SQL(text).format(t=table.ident, max=sql.Literal(MAX_SEQ_NUM)).as_string(None)

        ret = " RETURNING last_out, last_in, created_at"
        self.read = render("SELECT last_out, last_in, created_at FROM {t} WHERE session = %s")
        # last_out < MAX: the advance past MAX_SEQ_NUM is refused in the same statement.
        self.next_out = render(
            "UPDATE {t} SET last_out = last_out + 1 WHERE session = %s AND last_out < {max}" + ret
        )
        self.observed_in = render(
            "UPDATE {t} SET last_in = GREATEST(last_in, %s) WHERE session = %s" + ret
        )
        self.reset = render(
            "UPDATE {t} SET last_out = 0, last_in = 0, created_at = clock_timestamp() "
            "WHERE session = %s" + ret
        )
        self.set_next_out = render("UPDATE {t} SET last_out = %s WHERE session = %s" + ret)
        self.set_next_in = render("UPDATE {t} SET last_in = %s WHERE session = %s" + ret)
        self.insert = render("INSERT INTO {t} (session) VALUES (%s) ON CONFLICT DO NOTHING")
        self.sessions = render("SELECT session FROM {t}")
        self.create = render(
            "CREATE TABLE IF NOT EXISTS {t} ("
            "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            """session text COLLATE "C" NOT NULL CHECK (session <> ''), """
            "last_out bigint NOT NULL DEFAULT 0 CHECK (last_out >= 0), "
            "last_in bigint NOT NULL DEFAULT 0 CHECK (last_in >= 0), "
            "created_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
            # A btree entry cannot exceed about 2.7 kB and a session name may be any
            # length: a hash index keeps the names unique and finds the row.
            "EXCLUDE USING hash (session WITH =)"
            ") WITH (fillfactor = 70)"  # room on the page for HOT updates of a hot row
        )
        self.comment = (
            sql.SQL("COMMENT ON TABLE {t} IS {marker}")
            .format(t=table.ident, marker=sql.Literal(f"{_MARKER}{FORMAT_VERSION}"))
            .as_string(None)
        )


# -- the one boundary where psycopg's errors become fixseq's ----------------------------


@contextmanager
def _translated(action: str, table: _Table | None = None) -> Iterator[None]:
    """Raise every psycopg error inside as a :class:`~fixseq.SeqStoreError`, chained."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        where = f"table {table.name!r}" if table else "a table"
        raise CorruptStoreError(
            f"{action}: {where} does not exist any more (dropped while in use?); "
            f"fixseq never starts a session again at 1 by itself: {exc}"
        ) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreIOError(
            f"{action}: the connection to PostgreSQL failed; the change is not acknowledged "
            f"(it may or may not have been committed) and the next call reconnects: {exc}"
        ) from exc
    except psycopg.Error as exc:
        raise SeqStoreError(f"{action}: PostgreSQL refused: {exc}") from exc


def _pool_type() -> type[ConnectionPool[Any]] | None:
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        return None
    return ConnectionPool


def _check_conninfo(conninfo_or_pool: object) -> ConnectionPool[Any] | None:
    """Return the pool, or None for a connection string; anything else is a TypeError."""
    if isinstance(conninfo_or_pool, str):
        return None
    pool_type = _pool_type()
    if pool_type is not None and isinstance(conninfo_or_pool, pool_type):
        return conninfo_or_pool
    raise TypeError(
        "conninfo_or_pool must be a libpq connection string or a psycopg_pool.ConnectionPool, "
        f"not {type(conninfo_or_pool).__name__}"
    )


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    """Open one autocommit connection: each statement commits on its own."""
    conn = psycopg.connect(conninfo, autocommit=True)
    try:
        # A single UPDATE under READ COMMITTED waits for a concurrent writer's row lock and
        # then sees its result; under a server default of REPEATABLE READ or SERIALIZABLE it
        # would fail with a serialization error instead.
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
    except BaseException:
        conn.close()
        raise
    return conn


def _run(conn: psycopg.Connection[Any], query: str, params: tuple[object, ...]) -> Any:
    """Run one statement and commit it; return its first row (or None).

    psycopg returns only after the server's ReadyForQuery, that is after the
    commit (and, with synchronous_commit on, the WAL flush) of the statement.
    A pooled connection may not be in autocommit: then commit explicitly.
    """
    cur = conn.execute(query, params)
    row = cur.fetchone() if cur.description is not None else None
    if not conn.autocommit:
        conn.commit()
    return row


@contextmanager
def _borrowed(conninfo_or_pool: ConnInfo) -> Iterator[psycopg.Connection[Any]]:
    """A connection for one helper call: a new one (closed after), or one from the pool."""
    pool = _check_conninfo(conninfo_or_pool)
    if pool is None:
        conn = _connect(cast("str", conninfo_or_pool))
        try:
            yield conn
        finally:
            conn.close()
    else:
        with pool.connection() as conn:
            yield conn


def _table_version(conn: psycopg.Connection[Any], table: _Table) -> int | None:
    """Return the format of ``table``, or None when it does not exist.

    Raises:
        CorruptStoreError: The table exists but fixseq did not make it.
        SeqStoreError: It was made by a newer fixseq (a format this one cannot read).
    """
    return _parse_version(_run(conn, _VERSION_SQL, (table.regclass, table.regclass)), table)


_VERSION_SQL = "SELECT to_regclass(%s) IS NOT NULL, obj_description(to_regclass(%s), 'pg_class')"


def _parse_version(row: Any, table: _Table) -> int | None:
    exists, comment = row
    if not exists:
        return None
    match = _MARKER_RE.fullmatch(comment or "")
    if match is None:
        raise CorruptStoreError(
            f"table {table.name!r} exists but fixseq did not make it (no format marker in its "
            "COMMENT); fixseq leaves it alone: pass another table= name"
        )
    version = int(match.group(1))
    if version > FORMAT_VERSION:
        raise SeqStoreError(
            f"table {table.name!r} has format {version}, newer than this fixseq reads "
            f"({FORMAT_VERSION}): upgrade fixseq on this host; the table was not altered"
        )
    return version


def _ensure_table(
    conn: psycopg.Connection[Any], table: _Table, queries: _Queries, *, create: bool
) -> None:
    """Check the table, creating it first if it is missing and ``create`` is true.

    An existing table needs no DDL privilege: a deployment that ran
    :func:`create_schema` ahead of time grants the store row privileges only.
    """
    if _table_version(conn, table) is not None:
        return
    if not create:
        raise SeqStoreError(
            f"table {table.name!r} does not exist and create=False; nothing was created"
        )
    with conn.transaction():
        # Two processes creating the table at once: CREATE TABLE IF NOT EXISTS alone can
        # still fail on the catalog's unique index, so serialise on an advisory lock.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"fixseq:{table.regclass}",),
        )
        row = conn.execute(_VERSION_SQL, (table.regclass, table.regclass)).fetchone()
        if _parse_version(row, table) is None:
            conn.execute(queries.create)
            conn.execute(queries.comment)
    if _table_version(conn, table) is None:  # pragma: no cover - created just above
        raise SeqStoreError(f"table {table.name!r} could not be created")


def _state(row: Any, session: str) -> _State:
    last_out, last_in, created = row
    if not (0 <= last_out <= MAX_SEQ_NUM and 0 <= last_in <= MAX_SEQ_NUM):
        raise CorruptStoreError(
            f"session {session!r} holds counters out of range (last_out={last_out}, "
            f"last_in={last_in})"
        )
    return last_out + 1, last_in + 1, created.astimezone(_UTC)


# -- the store -------------------------------------------------------------------------


class PostgresSeqStore(SeqCounters):
    """A FIX session's counters in a PostgreSQL row that processes and hosts share.

    Each call is one atomic ``UPDATE ... RETURNING`` committed by the server
    before the call returns; no counter is cached in this process, so any
    number of stores on the same session, on any hosts, together hand out each
    outbound number exactly once, and the inbound mark never goes back. The
    creation time comes from the server's clock (``clock_timestamp()``), so
    every host agrees on it.

    The store holds one connection of its own (or, given a pool, borrows one
    for each call). A call whose connection fails raises
    :class:`~fixseq.StoreIOError` and hands out nothing; the next call
    reconnects (or takes another connection from the pool).

    Args:
        conninfo_or_pool: A libpq connection string or URL (``"host=... dbname=..."``,
            ``"postgresql://..."``), or an open ``psycopg_pool.ConnectionPool``
            the application already has (the store never closes it).
        session: The session's name: any non-empty str without NUL.
        table: The table, ``name`` or ``schema.name``; each part matches
            ``[A-Za-z_][A-Za-z0-9_]*`` and has at most 63 characters. It is
            quoted in SQL, so it is case-sensitive.
        create: Create the table (if missing) and the session's row (both
            counters at 1). With ``create=False`` a missing table or row raises
            :class:`~fixseq.SeqStoreError` and nothing is created: a lost
            database must never look like a new session.

    Raises:
        TypeError: ``session`` or ``table`` is not a str, or
            ``conninfo_or_pool`` is neither a str nor a ``ConnectionPool``.
        ValueError: ``session`` is empty or holds NUL; ``table`` is not a
            valid identifier.
        StoreIOError: The server cannot be reached.
        CorruptStoreError: The table exists but fixseq did not make it, or
            the row holds counters out of range.
        SeqStoreError: ``create=False`` and the table or row is missing; the
            table has a newer format; the server refused (privileges, ...).
    """

    _shared: ClassVar[bool] = True

    def __init__(
        self,
        conninfo_or_pool: ConnInfo,
        session: str,
        *,
        table: str = DEFAULT_TABLE,
        create: bool = True,
    ) -> None:
        _check_session(session)
        parsed = _Table(table)
        pool = _check_conninfo(conninfo_or_pool)
        super().__init__()
        self._session = session
        self._table = parsed
        self._queries = _Queries(parsed)
        self._pool = pool
        self._conninfo = cast("str", conninfo_or_pool) if pool is None else None
        self._conn: psycopg.Connection[Any] | None = None
        try:
            state = self._call("open", self._open, create)
        except BaseException:
            self._drop_connection()
            raise
        self._restore(*state)

    # -- connection handling (called with the core's lock held, or from __init__) ------

    def _open(self, conn: psycopg.Connection[Any], create: bool) -> _State:
        _ensure_table(conn, self._table, self._queries, create=create)
        if create:
            _run(conn, self._queries.insert, (self._session,))
        row = _run(conn, self._queries.read, (self._session,))
        if row is None:
            raise SeqStoreError(
                f"session {self._session!r} has no row in table {self._table.name!r} and "
                "create=False; nothing was created"
            )
        return _state(row, self._session)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _call(self, action: str, func: Any, *args: object) -> Any:
        """Run ``func(conn, *args)`` on a healthy connection, translating its errors.

        With a connection of our own: reconnect first if the last one broke;
        a failure that leaves it broken (or an interrupt mid-statement) drops
        it, so the next call starts on a fresh one. With a pool: borrow one for
        this call and give it back (the pool discards a broken one).
        """
        with _translated(f"{action} on session {self._session!r}", self._table):
            if self._pool is not None:
                return self._call_pooled(func, args)
            conn = self._conn
            if conn is None or conn.closed or conn.broken:
                self._drop_connection()
                assert self._conninfo is not None
                conn = self._conn = _connect(self._conninfo)
            try:
                return func(conn, *args)
            except psycopg.Error:
                if conn.closed or conn.broken:
                    self._drop_connection()
                raise
            except BaseException:
                # KeyboardInterrupt and the like, perhaps mid-protocol: start afresh.
                self._drop_connection()
                raise

    def _call_pooled(self, func: Any, args: tuple[object, ...]) -> Any:
        assert self._pool is not None
        conn = self._pool.getconn()
        try:
            return func(conn, *args)
        except BaseException:
            if not conn.autocommit and not conn.closed and not conn.broken:
                try:
                    conn.rollback()
                except psycopg.Error:
                    pass  # the pool checks and discards it
            raise
        finally:
            self._pool.putconn(conn)

    # -- the core's shared-store hooks -------------------------------------------------

    def _apply(self, op: str, seq_num: int) -> _State | None:
        """Do ``op`` as one statement on the session's row and return the new state."""
        return cast("_State | None", self._call(op, self._apply_on, op, seq_num))

    def _apply_on(self, conn: psycopg.Connection[Any], op: str, seq_num: int) -> _State | None:
        queries, key = self._queries, self._session
        if op == "next_out":
            row = _run(conn, queries.next_out, (key,))
            if row is None:
                if _run(conn, queries.read, (key,)) is not None:
                    return None  # the row is there: the guard refused, MAX_SEQ_NUM was reached
                self._vanished()
        elif op == "read":
            row = _run(conn, queries.read, (key,))
        elif op == "observed_in":
            row = _run(conn, queries.observed_in, (seq_num, key))
        elif op == "reset":
            row = _run(conn, queries.reset, (key,))
        elif op == "set_next_out":
            row = _run(conn, queries.set_next_out, (seq_num - 1, key))
        elif op == "set_next_in":
            row = _run(conn, queries.set_next_in, (seq_num - 1, key))
        else:  # pragma: no cover - internal misuse
            raise AssertionError(op)
        if row is None:
            self._vanished()
        return _state(row, self._session)

    def _vanished(self) -> None:
        raise CorruptStoreError(
            f"the row of session {self._session!r} in table {self._table.name!r} is gone "
            "(deleted while in use?); fixseq never starts a session again at 1 by itself"
        )

    def _release(self) -> None:
        self._drop_connection()

    # -- public extras -------------------------------------------------------------------

    @property
    def session(self) -> str:
        """The session's name, as given."""
        return self._session

    @property
    def table(self) -> str:
        """The table's name, as given (``name`` or ``schema.name``)."""
        return self._table.name

    def as_async(self) -> AsyncPostgresSeqStore:
        """Return an :class:`AsyncPostgresSeqStore` over this same store and connection."""
        return AsyncPostgresSeqStore._over(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session={self._session!r} table={self._table.name!r}>"


class AsyncPostgresSeqStore(AsyncAdminShell[PostgresSeqStore]):
    """The async twin of :class:`PostgresSeqStore`, for asyncio and trio.

    Every coroutine runs the sync store's method in a worker thread through
    anyio (psycopg's own async connection is asyncio-only), so the event loop
    never blocks and trio works too. ``as_sync()`` returns the sync store:
    the same connection, the same closed state.

    The constructor connects synchronously, once; inside an event loop prefer
    ``await AsyncPostgresSeqStore.open(...)``, which connects in a worker
    thread. Arguments and errors are those of :class:`PostgresSeqStore`.

    Args:
        conninfo_or_pool: A libpq connection string, or a ``psycopg_pool.ConnectionPool``.
        session: The session's name: any non-empty str without NUL.
        table: The table, ``name`` or ``schema.name``.
        create: Create the table and row if missing (else raise).

    Raises:
        TypeError: See :class:`PostgresSeqStore`.
        ValueError: See :class:`PostgresSeqStore`.
        SeqStoreError: See :class:`PostgresSeqStore`.
    """

    def __init__(
        self,
        conninfo_or_pool: ConnInfo,
        session: str,
        *,
        table: str = DEFAULT_TABLE,
        create: bool = True,
    ) -> None:
        super().__init__(PostgresSeqStore(conninfo_or_pool, session, table=table, create=create))

    @classmethod
    async def open(
        cls,
        conninfo_or_pool: ConnInfo,
        session: str,
        *,
        table: str = DEFAULT_TABLE,
        create: bool = True,
    ) -> Self:
        """Connect in a worker thread and return the store; arguments as the constructor's.

        Cancelled while connecting, it closes the store it was building.

        Raises:
            TypeError: See :class:`PostgresSeqStore`.
            ValueError: See :class:`PostgresSeqStore`.
            SeqStoreError: See :class:`PostgresSeqStore`.
        """
        built: list[PostgresSeqStore] = []

        def build() -> PostgresSeqStore:
            store = PostgresSeqStore(conninfo_or_pool, session, table=table, create=create)
            built.append(store)
            return store

        try:
            sync = await offload(build)
        except BaseException:
            for store in built:  # cancelled after the thread had connected
                store.close()
            raise
        return cls._over(sync)


# -- module functions ------------------------------------------------------------------


def create_schema(conninfo_or_pool: ConnInfo, *, table: str = DEFAULT_TABLE) -> None:
    """Create the sessions table ahead of time (does nothing if it is there).

    For deployments whose engines get row privileges only (SELECT, INSERT,
    UPDATE on the table): run this once with a role that may create tables.

    Args:
        conninfo_or_pool: A libpq connection string, or a ``psycopg_pool.ConnectionPool``.
        table: The table, ``name`` or ``schema.name``.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``table`` is not a valid identifier.
        CorruptStoreError: A table of that name exists and fixseq did not make it.
        SeqStoreError: The table has a newer format, or the server refused.
    """
    parsed = _Table(table)
    with _translated(f"create_schema({table!r})", parsed), _borrowed(conninfo_or_pool) as conn:
        _ensure_table(conn, parsed, _Queries(parsed), create=True)
        if not conn.autocommit:
            conn.commit()


def list_sessions(conninfo_or_pool: ConnInfo, *, table: str = DEFAULT_TABLE) -> list[str]:
    """Return the names of the sessions in ``table``, sorted (by code point); creates nothing.

    Args:
        conninfo_or_pool: A libpq connection string, or a ``psycopg_pool.ConnectionPool``.
        table: The table, ``name`` or ``schema.name``.

    Returns:
        The session names; ``[]`` when the table does not exist.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``table`` is not a valid identifier.
        CorruptStoreError: A table of that name exists and fixseq did not make it.
        SeqStoreError: The table has a newer format, or the server refused.
    """
    parsed = _Table(table)
    with _translated(f"list_sessions({table!r})", parsed), _borrowed(conninfo_or_pool) as conn:
        if _table_version(conn, parsed) is None:
            names: list[str] = []
        else:
            names = [row[0] for row in conn.execute(_Queries(parsed).sessions).fetchall()]
        if not conn.autocommit:
            conn.commit()
    return sorted(names)
