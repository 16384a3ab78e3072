"""PostgreSQL store: a session's counters in one row that several processes and hosts share.

For an active/standby pair of engines on two hosts (or any number of processes)
that must continue from the exact numbers the other reached. Needs the extra
``fixseq[postgres]`` (psycopg 3 and psycopg-pool); ``import fixseq`` alone
never imports psycopg.

Every call is a committed ``UPDATE ... RETURNING`` on the session's row
(:meth:`PostgresSeqStore._apply`), so the server, not this process, holds the
truth: a number is handed out only after the server has committed the advance
past it, two callers anywhere never get the same number, and the inbound mark
never regresses. Calls made at the same time share a statement or a pipelined
transaction (group commit, :func:`_group_on`), each still with its own result.

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
import functools
import os
import re
import threading
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, cast

from ._core import SeqCounters
from ._group import Batcher
from ._protocols import MAX_SEQ_NUM
from ._rules import check_bool, check_reserve, check_session_name
from ._twins import AsyncAdminShell, open_in_thread
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
    from collections.abc import Iterator, Sequence
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
#: A probe's answer when the row moved under a reserved block (only "not None" counts).
_MOVED: Final = (0, 0, datetime.datetime(1970, 1, 1, tzinfo=_UTC))
_State = tuple[int, int, datetime.datetime]
#: One call in a group: the store, the operation, its number and (give_back) a second one.
_Item = tuple["PostgresSeqStore", str, int, int]

# -- validation ------------------------------------------------------------------------


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
        # Advance by k (1, several callers' 1s in one group, or a reservation block); an
        # advance past MAX_SEQ_NUM is refused in the same statement.
        # (With the row's id: a store keeps it as the witness of a reserved block.)
        self.next_out = render(
            "UPDATE {t} SET last_out = last_out + %s WHERE session = %s "
            "AND last_out <= {max} - %s" + ret + ", id"
        )
        # A reservation's unused numbers go back only if nobody advanced past the block
        # and no set or reset ran since it was reserved (they give the row a new id).
        self.give_back = render(
            "UPDATE {t} SET last_out = %s WHERE session = %s AND last_out = %s AND id = %s"
        )
        # What a store holding a reserved block asks per number: a read, no WAL write.
        self.probe = render("SELECT last_out, id FROM {t} WHERE session = %s")
        self.observed_in = render(
            "UPDATE {t} SET last_in = GREATEST(last_in, %s) WHERE session = %s" + ret
        )
        # reset and set_next_out give the row a new id (the identity column's next
        # value; nothing else refers to it): a generation that a store holding a
        # block compares, so a set to the value the row already held is seen too.
        self.reset = render(
            "UPDATE {t} SET last_out = 0, last_in = 0, created_at = clock_timestamp(), "
            "id = DEFAULT WHERE session = %s" + ret
        )
        self.set_next_out = render(
            "UPDATE {t} SET last_out = %s, id = DEFAULT WHERE session = %s" + ret
        )
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


#: What a failed call could have done: sent a change, only read, or sent nothing at all.
_Effect = Literal["write", "read", "unsent"]


def _translate(
    exc: psycopg.Error, action: str, table: _Table | None, *, effect: _Effect = "write"
) -> SeqStoreError:
    """The fixseq error for a psycopg error; the caller raises it ``from exc``.

    ``effect`` says what the failed call could have done, so the message tells the
    caller what became of it: ``"write"`` (a change was sent: its fate is unknown
    if the connection broke), ``"read"`` (it changes nothing) or ``"unsent"`` (the
    connection failed before anything was sent).
    """
    if isinstance(exc, psycopg.errors.UndefinedTable):
        where = f"table {table.name!r}" if table else "a table"
        return CorruptStoreError(
            f"{action}: {where} does not exist any more (dropped while in use?); "
            f"fixseq never starts a session again at 1 by itself: {exc}"
        )
    state = exc.sqlstate
    if isinstance(exc, psycopg.InterfaceError) or (
        isinstance(exc, psycopg.OperationalError)
        and (state is None or state.startswith("08") or state.startswith("57P"))
    ):
        # No SQLSTATE (the client lost the socket), a connection exception, or the server
        # shutting down: a change sent may or may not have been committed.
        outcome = _LOST_CONNECTION[effect]
        return StoreIOError(f"{action}: the connection to PostgreSQL failed{outcome}: {exc}")
    if isinstance(exc, psycopg.OperationalError):
        # The server answered with an error (a timeout, a serialization failure, a full
        # disk): the statement was rolled back.
        if effect == "read":
            return StoreIOError(f"{action}: PostgreSQL did not answer the read: {exc}")
        return StoreIOError(f"{action}: PostgreSQL did not apply the change: {exc}")
    return SeqStoreError(f"{action}: PostgreSQL refused: {exc}")


_LOST_CONNECTION: Final[dict[_Effect, str]] = {
    "write": "; the change is not acknowledged (it may or may not have been committed) and "
    "the next call reconnects",
    "read": "; nothing was changed (a read), and the next call reconnects",
    "unsent": " before anything was sent; nothing was changed, and the next call tries again",
}


@contextmanager
def _translated(
    action: str, table: _Table | None = None, *, effect: _Effect = "write"
) -> Iterator[None]:
    """Raise every psycopg error inside as a :class:`~fixseq.SeqStoreError`, chained."""
    try:
        yield
    except psycopg.Error as exc:
        raise _translate(exc, action, table, effect=effect) from exc


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


def _run(cur: psycopg.Cursor[Any], query: str, params: tuple[object, ...]) -> Any:
    """Run one statement that returns a row, commit it, and return the row (or None).

    psycopg returns only after the server's ReadyForQuery, that is after the
    commit (and, with synchronous_commit on, the WAL flush) of the statement.
    A pooled connection may not be in autocommit: then commit explicitly.
    """
    cur.execute(query, params)
    row = cur.fetchone()
    conn = cur.connection
    if not conn.autocommit:
        conn.commit()
    return row


def _exec(cur: psycopg.Cursor[Any], query: str, params: tuple[object, ...]) -> None:
    """Run one statement that returns no row, and commit it."""
    cur.execute(query, params)
    conn = cur.connection
    if not conn.autocommit:
        conn.commit()


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
    row = _run(conn.cursor(), _VERSION_SQL, (table.regclass, table.regclass))
    return _parse_version(row, table)


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
    last_out, last_in, created = row[0], row[1], row[2]
    if not (0 <= last_out <= MAX_SEQ_NUM and 0 <= last_in <= MAX_SEQ_NUM):
        raise CorruptStoreError(
            f"session {session!r} holds counters out of range (last_out={last_out}, "
            f"last_in={last_in})"
        )
    return last_out + 1, last_in + 1, created.astimezone(_UTC)


# -- group commit ------------------------------------------------------------------------


def _run_group(items: Sequence[_Item]) -> list[_State | BaseException | None]:
    """Run a group of calls on one connection (the first store's, or one of their pool's)."""
    ops = {op for _, op, _, _ in items}
    # A lone call is named as the caller made it; a group's failure fails each of its calls.
    action = _CALLS[items[0][1]] if len(items) == 1 else f"a group of {len(items)} calls"
    effect: _Effect = "read" if ops <= {"read", "probe"} else "write"
    return cast(
        "list[_State | BaseException | None]",
        items[0][0]._call(action, _group_on, items, effect=effect),
    )


# How a failed call is named in its error, by the core's operation.
_CALLS: Final = {
    "read": "reading the counters",
    "probe": "next_out()",
    "next_out": "next_out()",
    "observed_in": "observed_in()",
    "reset": "reset()",
    "set_next_out": "set_next_out()",
    "set_next_in": "set_next_in()",
    "give_back": "returning the unused part of a reserved block",
}


class _Plan:
    """One statement of a group, and the calls (by index) it answers."""

    __slots__ = ("count", "extra", "indexes", "op", "seq_num", "store")

    def __init__(self, store: PostgresSeqStore, op: str, seq_num: int, extra: int) -> None:
        self.store, self.op, self.seq_num, self.extra = store, op, seq_num, extra
        self.indexes: list[int] = []
        self.count = 0  # next_out: the numbers all its calls take together


def _group_on(
    cur: psycopg.Cursor[Any], items: Sequence[_Item]
) -> list[_State | BaseException | None]:
    """Run every call of a group in as few statements and round trips as the protocol allows.

    All ``next_out`` calls on one session become ONE ``last_out = last_out + k``
    statement whose new value hands each caller its own numbers, in queue
    order. If that leaves one statement, it runs alone (one round trip, one
    commit); several run as one transaction in pipeline mode (one round trip,
    one commit). Calls in a group were all waiting at once, so any order
    among them is a valid order.
    """
    plans: list[_Plan] = []
    merged: dict[tuple[str, str], _Plan] = {}
    for index, (store, op, seq_num, extra) in enumerate(items):
        key = (store._table.regclass, store._session)
        plan = merged.get(key) if op == "next_out" else None
        if plan is None:
            plan = _Plan(store, op, seq_num, extra)
            plans.append(plan)
            if op == "next_out":
                merged[key] = plan
        plan.indexes.append(index)
        plan.count += seq_num
    outcomes: list[_State | BaseException | None] = [None] * len(items)
    if len(plans) == 1:
        plan = plans[0]
        query, params = plan.store._statement(plan.op, plan.count, plan.extra)
        if plan.op == "give_back":
            _exec(cur, query, params)
            rows: list[Any] = [None]
        else:
            rows = [_run(cur, query, params)]
    else:
        conn = cur.connection
        cursors: list[psycopg.Cursor[Any] | None] = []
        with conn.pipeline(), conn.transaction():
            for plan in plans:
                query, params = plan.store._statement(plan.op, plan.count, plan.extra)
                cursors.append(conn.cursor().execute(query, params))
                if plan.op == "give_back":
                    cursors[-1] = None  # no row to fetch
        rows = [None if c is None else c.fetchone() for c in cursors]
    for plan, row in zip(plans, rows, strict=True):
        store = plan.store
        if plan.op == "give_back":
            continue
        if plan.op == "probe":
            outcomes[plan.indexes[0]] = store._probed(row, plan.seq_num)
            continue
        if row is None and plan.op == "next_out":
            # Refused (fewer numbers left than the group asked for) or the row is gone:
            # each call again on its own, so each gets its own exact answer.
            for index in plan.indexes:
                try:
                    outcomes[index] = store._apply_on(cur, "next_out", items[index][2], 0)
                except SeqStoreError as exc:
                    outcomes[index] = exc
            continue
        if row is None:
            outcomes[plan.indexes[0]] = store._vanished_error()
            continue
        try:
            state = _state(row, store._session)
        except SeqStoreError as exc:
            for index in plan.indexes:
                outcomes[index] = exc
            continue
        if plan.op != "next_out":
            outcomes[plan.indexes[0]] = state
            continue
        # The block plan.count wide ends at state's next_out; its calls take it in order.
        taken = state[0] - plan.count
        for index in plan.indexes:
            items[index][0]._block_id = row[3]
            taken += items[index][2]
            outcomes[index] = (taken, state[1], state[2])
    return outcomes


# One batcher per pool: the stores sharing a pool share their groups.
_POOL_BATCHERS: weakref.WeakKeyDictionary[Any, Batcher[_Item, _State | None]] = (
    weakref.WeakKeyDictionary()
)
_POOL_BATCHERS_LOCK = threading.Lock()


def _pool_batcher(pool: ConnectionPool[Any]) -> Batcher[_Item, _State | None]:
    with _POOL_BATCHERS_LOCK:
        batcher = _POOL_BATCHERS.get(pool)
        if batcher is None:
            batcher = _POOL_BATCHERS[pool] = Batcher(_run_group)
        return batcher


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

    Group commit: calls made at the same time on one store (or on stores
    sharing a pool) share statements and round trips: all ``next_out`` calls
    on one session become one ``last_out = last_out + k`` statement that
    hands each caller its own numbers; other calls join the same
    transaction, sent in pipeline mode. A lone call runs at once. A failed
    statement or commit fails every call of its group.

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
        reserve: How many outbound numbers one statement reserves (default 1:
            none held back). With ``reserve=K`` the store advances the stored
            counter by K in one statement and hands the block out from memory;
            after a crash the session resumes above the block (a gap of at
            most K numbers, never a reused one), and :meth:`close`,
            :meth:`set_next_out` and :meth:`reset` give the unused part back.
            Each store holds its own block, so several writers of one session
            get unique numbers but not in order: use it with one writer per
            session (an engine, or an active/standby pair). Inbound is never
            reserved.

    Raises:
        TypeError: ``session`` or ``table`` is not a str, ``create`` is not a
            bool, ``reserve`` is not an int, or ``conninfo_or_pool`` is neither a
            str nor a ``ConnectionPool``.
        ValueError: ``session`` is empty or holds NUL; ``table`` is not a
            valid identifier; ``reserve`` is outside ``1..MAX_SEQ_NUM`` (an
            [`InvalidSeqNumError`][fixseq.InvalidSeqNumError]).
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
        reserve: int = 1,
    ) -> None:
        session = check_session_name(session)
        parsed = _Table(table)
        check_bool(create, "create")
        check_reserve(reserve)  # before any connection is made
        pool = _check_conninfo(conninfo_or_pool)
        super().__init__()
        self._session = session
        self._table = parsed
        self._queries = _Queries(parsed)
        self._pool = pool
        self._conninfo = cast("str", conninfo_or_pool) if pool is None else None
        self._conn: psycopg.Connection[Any] | None = None
        self._cur: psycopg.Cursor[Any] | None = None  # reused: one per connection
        # Group commit: concurrent calls on this store (or on every store of its pool)
        # share statements and round trips; the batcher's leader alone uses the connection.
        self._batcher = Batcher(_run_group) if pool is None else _pool_batcher(pool)
        self._set_reserve(reserve)
        # The row's id when this store last reserved a block: the block's witness
        # (reset and set_next_out give the row a new id).
        self._block_id: object = None
        try:
            # Opening with create=False only reads; with create=True it may add the row.
            state = self._call("open", self._open, create, effect="write" if create else "read")
        except BaseException:
            self._drop_connection()
            raise
        self._restore(*state)

    # -- connection handling (called by a group's leader, or from __init__) ------------

    def _open(self, cur: psycopg.Cursor[Any], create: bool) -> _State:
        _ensure_table(cur.connection, self._table, self._queries, create=create)
        if create:
            _exec(cur, self._queries.insert, (self._session,))
        row = _run(cur, self._queries.read, (self._session,))
        if row is None:
            raise SeqStoreError(
                f"session {self._session!r} has no row in table {self._table.name!r} and "
                "create=False; nothing was created"
            )
        return _state(row, self._session)

    def _drop_connection(self) -> None:
        conn, self._conn, self._cur = self._conn, None, None
        if conn is not None:
            conn.close()

    def _call(self, action: str, func: Any, *args: object, effect: _Effect = "write") -> Any:
        """Run ``func(cursor, *args)`` on a healthy connection, translating its errors.

        With a connection of our own: reconnect first if the last one broke;
        a failure that leaves it broken (or an interrupt mid-statement) drops
        it, so the next call starts on a fresh one. With a pool: borrow one for
        this call and give it back (the pool discards a broken one). ``effect``
        words the error (see :func:`_translate`); a failure to connect sent nothing.
        """
        sent = True
        try:
            if self._pool is not None:
                return self._call_pooled(func, args)
            conn, cur = self._conn, self._cur
            if conn is None or cur is None or conn.closed or conn.broken:
                self._drop_connection()
                assert self._conninfo is not None
                sent = False
                conn = self._conn = _connect(self._conninfo)
                cur = self._cur = conn.cursor()
                sent = True
            try:
                return func(cur, *args)
            except psycopg.Error:
                if conn.closed or conn.broken:
                    self._drop_connection()
                raise
            except BaseException:
                # KeyboardInterrupt and the like, perhaps mid-protocol: start afresh.
                self._drop_connection()
                raise
        except psycopg.Error as exc:
            # The one boundary for the store's calls (the message is built only on failure).
            action = f"{action} on session {self._session!r}"
            effect = effect if sent else "unsent"
            raise _translate(exc, action, self._table, effect=effect) from exc

    def _call_pooled(self, func: Any, args: tuple[object, ...]) -> Any:
        assert self._pool is not None
        conn = self._pool.getconn()
        try:
            return func(conn.cursor(), *args)
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
        """Do ``op`` on the session's row, in a group with concurrent calls; return the state."""
        return self._batcher.submit((self, op, seq_num, 0))

    def _give_back(self, reserved_end: int, next_out: int) -> None:
        self._batcher.submit((self, "give_back", reserved_end - 1, next_out - 1))

    def _block_moved(self, block_end: int) -> bool:
        # One SELECT in the group path (a read: no commit to flush); see _probed.
        return self._batcher.submit((self, "probe", block_end, 0)) is not None

    def _probed(self, row: Any, block_end: int) -> _State | BaseException | None:
        """A probe's outcome: None while the row still holds our block, else not None."""
        if row is None:
            return self._vanished_error()
        if row[0] == block_end - 1 and row[1] == self._block_id:
            return None
        return _MOVED  # the core drops the block and reserves again from the row

    def _statement(self, op: str, seq_num: int, extra: int) -> tuple[str, tuple[object, ...]]:
        """The statement doing ``op`` on the session's row, and its parameters."""
        queries, key = self._queries, self._session
        if op == "next_out":  # seq_num: how many numbers
            return queries.next_out, (seq_num, key, seq_num)
        if op == "read":
            return queries.read, (key,)
        if op == "observed_in":
            return queries.observed_in, (seq_num, key)
        if op == "reset":
            return queries.reset, (key,)
        if op == "set_next_out":
            return queries.set_next_out, (seq_num - 1, key)
        if op == "set_next_in":
            return queries.set_next_in, (seq_num - 1, key)
        if op == "give_back":  # seq_num: the expected last_out; extra: the new one
            return queries.give_back, (extra, key, seq_num, self._block_id)
        if op == "probe":
            return queries.probe, (key,)
        raise AssertionError(op)  # pragma: no cover - internal misuse

    def _apply_on(
        self, cur: psycopg.Cursor[Any], op: str, seq_num: int, extra: int
    ) -> _State | None:
        """Do one call as one statement on its own (a lone call, or a refused group's)."""
        query, params = self._statement(op, seq_num, extra)
        if op == "give_back":
            _exec(cur, query, params)
            return None
        row = _run(cur, query, params)
        if op == "probe":
            probed = self._probed(row, seq_num)
            if isinstance(probed, BaseException):
                raise probed
            return probed
        if op == "next_out" and row is not None:
            self._block_id = row[3]
        if row is None:
            if op == "next_out" and _run(cur, self._queries.read, (self._session,)) is not None:
                return None  # the row is there: the guard refused, MAX_SEQ_NUM was reached
            raise self._vanished_error()
        return _state(row, self._session)

    def _vanished_error(self) -> CorruptStoreError:
        return CorruptStoreError(
            f"the row of session {self._session!r} in table {self._table.name!r} is gone "
            "(deleted while in use?); fixseq never starts a session again at 1 by itself"
        )

    def _release(self) -> None:
        self._drop_connection()

    def _after_fork_in_child(self) -> None:
        # The child's copy of the connection shares the parent's socket: anything
        # libpq sent on it (a query, or PQfinish's Terminate message when the copy
        # is freed) would land in the parent's session. Point the child's
        # descriptor at /dev/null instead; the parent's socket is untouched. (A
        # pool's connections are the application's, and so is their fork safety.)
        conn = self._conn
        if conn is None:
            return
        try:
            sock = conn.pgconn.socket
        except psycopg.Error:
            return  # closed: no socket
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.dup2(null, sock, inheritable=False)
        finally:
            os.close(null)

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
        reserve: Outbound numbers one statement reserves (see :class:`PostgresSeqStore`).

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
        reserve: int = 1,
    ) -> None:
        super().__init__(
            PostgresSeqStore(conninfo_or_pool, session, table=table, create=create, reserve=reserve)
        )

    @classmethod
    async def open(
        cls,
        conninfo_or_pool: ConnInfo,
        session: str,
        *,
        table: str = DEFAULT_TABLE,
        create: bool = True,
        reserve: int = 1,
    ) -> Self:
        """Connect in a worker thread and return the store; arguments as the constructor's.

        Cancelled while connecting, it closes the store it was building.

        Raises:
            TypeError: See :class:`PostgresSeqStore`.
            ValueError: See :class:`PostgresSeqStore`.
            SeqStoreError: See :class:`PostgresSeqStore`.
        """
        opener = functools.partial(
            PostgresSeqStore, conninfo_or_pool, session, table=table, create=create, reserve=reserve
        )
        return cls._over(await open_in_thread(opener, PostgresSeqStore.close))


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
    with (
        _translated(f"list_sessions({table!r})", parsed, effect="read"),
        _borrowed(conninfo_or_pool) as conn,
    ):
        if _table_version(conn, parsed) is None:
            names: list[str] = []
        else:
            names = [row[0] for row in conn.execute(_Queries(parsed).sessions).fetchall()]
        if not conn.autocommit:
            conn.commit()
    return sorted(names)
