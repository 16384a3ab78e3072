"""PostgresSeqStore against a real server: contract, schema, tables, pools, hostile input, async."""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest
from postgres_support import (
    admin,
    drop_table,
    require_dsn,
    row_of,
    table_exists,
    terminate,
    unique,
    with_app_name,
)
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from fixseq import (
    MAX_SEQ_NUM,
    AdminSeqStore,
    AsyncAdminSeqStore,
    CorruptStoreError,
    InvalidSeqNumError,
    SeqNumExhaustedError,
    SeqState,
    SeqStoreError,
    StoreClosedError,
    StoreIOError,
)
from fixseq.postgres import (
    AsyncPostgresSeqStore,
    PostgresSeqStore,
    create_schema,
    list_sessions,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

UTC = datetime.timezone.utc


@pytest.fixture
def dsn() -> str:
    return require_dsn()


@pytest.fixture
def table(dsn: str) -> Iterator[str]:
    """A table of this test's own, dropped afterwards."""
    name = unique("fixseq_t")
    yield name
    drop_table(dsn, name)


def server_now(dsn: str) -> datetime.datetime:
    with admin(dsn) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0].astimezone(UTC)  # type: ignore[no-any-return]


# -- packaging: no server needed -----------------------------------------------------


def test_import_fixseq_does_not_import_psycopg(child_env: dict[str, str]) -> None:
    code = "import sys, fixseq; assert 'psycopg' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], env=child_env, check=True, timeout=60)


def test_missing_extra_names_it(child_env: dict[str, str]) -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if the extra were not installed\n"
        "try:\n"
        "    import fixseq.postgres\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported without psycopg')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, check=True, capture_output=True, text=True
    )
    assert "fixseq[postgres]" in out.stdout


def test_wrong_argument_types_fail_before_connecting() -> None:
    with pytest.raises(TypeError, match="connection string or a psycopg_pool"):
        PostgresSeqStore(42, "s")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="session must be a str"):
        PostgresSeqStore("host=127.0.0.1 port=1", b"s")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="table must be a str"):
        PostgresSeqStore("host=127.0.0.1 port=1", "s", table=None)  # type: ignore[arg-type]


def test_unreachable_server_is_a_store_io_error() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StoreIOError, match="connection to PostgreSQL failed") as info:
        PostgresSeqStore("host=127.0.0.1 port=1 connect_timeout=5", "s")
    assert isinstance(info.value.__cause__, psycopg.OperationalError)


# -- the contract ----------------------------------------------------------------------


def test_counters_contract(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "FIX.4.4:A->B", table=table) as store:
        assert isinstance(store, AdminSeqStore)
        assert store.snapshot() == SeqState(1, 1)
        assert [store.next_out() for _ in range(3)] == [1, 2, 3]
        assert store.peek_out() == 4
        store.observed_in(7)
        store.observed_in(3)  # below the mark: the mark stays
        assert store.current_in() == 8
        store.set_next_out(100)
        store.set_next_in(50)  # an operator may move it back
        assert store.snapshot() == SeqState(100, 50)
        assert row_of(dsn, table, "FIX.4.4:A->B") == (99, 49)  # stored as the last value
        with pytest.raises(InvalidSeqNumError):
            store.set_next_out(0)
        with pytest.raises(TypeError):
            store.observed_in("5")  # type: ignore[arg-type]
        assert store.snapshot() == SeqState(100, 50)  # a rejected call changed nothing
        store.reset()
        assert store.snapshot() == SeqState(1, 1)
    assert store.closed
    with pytest.raises(StoreClosedError):
        store.next_out()
    store.close()  # a second close does nothing


def test_no_counter_is_cached_in_the_process(dsn: str, table: str) -> None:
    with (
        PostgresSeqStore(dsn, "shared", table=table) as a,
        PostgresSeqStore(dsn, "shared", table=table) as b,
    ):
        assert a.next_out() == 1
        assert b.next_out() == 2
        b.observed_in(10)
        assert a.current_in() == 11
        a.set_next_out(500)
        assert b.peek_out() == 500
        assert b.snapshot() == SeqState(500, 11)


def test_reopen_continues_where_it_was(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "s", table=table) as store:
        for _ in range(5):
            store.next_out()
        store.observed_in(9)
        created = store.creation_time()
    with PostgresSeqStore(dsn, "s", table=table) as again:
        assert again.snapshot() == SeqState(6, 10)
        assert again.creation_time() == created


def test_exhaustion_at_max_seq_num(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "s", table=table) as store:
        store.set_next_out(MAX_SEQ_NUM)
        assert store.next_out() == MAX_SEQ_NUM
        assert store.peek_out() == MAX_SEQ_NUM + 1
        with pytest.raises(SeqNumExhaustedError):
            store.next_out()
        assert row_of(dsn, table, "s") == (MAX_SEQ_NUM, 0)  # BIGINT's largest value
        store.observed_in(MAX_SEQ_NUM)
        assert store.current_in() == MAX_SEQ_NUM + 1
        store.reset()
        assert store.next_out() == 1


def test_creation_time_comes_from_the_server_and_changes_only_on_reset(
    dsn: str, table: str
) -> None:
    before = server_now(dsn)
    with PostgresSeqStore(dsn, "s", table=table) as store:
        after = server_now(dsn)
        created = store.creation_time()
        assert created.tzinfo is not None and created.utcoffset() == datetime.timedelta(0)
        assert before <= created <= after
        store.next_out()
        store.observed_in(3)
        store.set_next_out(10)
        store.set_next_in(10)
        assert store.creation_time() == created
        store.reset()
        reset_at = store.creation_time()
        assert after <= reset_at <= server_now(dsn)
        with admin(dsn) as conn:
            row = conn.execute(
                sql.SQL("SELECT created_at FROM {} WHERE session = 's'").format(
                    sql.Identifier(table)
                )
            ).fetchone()
        assert row is not None and row[0] == reset_at


# -- schema, tables, create=False ------------------------------------------------------


def test_create_schema_ahead_then_a_store_with_row_privileges_only(dsn: str, table: str) -> None:
    create_schema(dsn, table=table)
    create_schema(dsn, table=table)  # again: nothing to do
    assert table_exists(dsn, table)
    assert list_sessions(dsn, table=table) == []
    role, password = unique("fixseq_role"), unique("pw")
    with admin(dsn) as conn:
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test server's user may not create roles")
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(
                sql.Identifier(table), sql.Identifier(role)
            )
        )
    try:
        limited = make_conninfo(dsn, user=role, password=password)
        with PostgresSeqStore(limited, "engine", table=table) as store:
            assert store.next_out() == 1
            store.reset()
        assert list_sessions(limited, table=table) == ["engine"]
        # The limited role cannot create a table: so the store above really needed no DDL.
        with pytest.raises(SeqStoreError, match="permission denied"):
            PostgresSeqStore(limited, "engine", table=unique("fixseq_t_denied"))
    finally:
        with admin(dsn) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_custom_table_in_its_own_schema(dsn: str) -> None:
    schema = unique("fixseq_schema")
    qualified = f"{schema}.Sessions_Of_Desk_7"  # mixed case: quoted, so kept as written
    with admin(dsn) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        with PostgresSeqStore(dsn, "desk7", table=qualified) as store:
            store.next_out()
            assert store.table == qualified
        with admin(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                (schema, "Sessions_Of_Desk_7"),
            ).fetchone()
        assert row == (1,)
        assert list_sessions(dsn, table=qualified) == ["desk7"]
        assert list_sessions(dsn) == list_sessions(dsn)  # the default table is another one
        with PostgresSeqStore(dsn, "desk7", table=qualified) as again:
            assert again.peek_out() == 2
    finally:
        with admin(dsn) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_create_false_creates_nothing(dsn: str, table: str) -> None:
    with pytest.raises(SeqStoreError, match="does not exist and create=False"):
        PostgresSeqStore(dsn, "s", table=table, create=False)
    assert not table_exists(dsn, table)
    create_schema(dsn, table=table)
    with pytest.raises(SeqStoreError, match=r"no row .* create=False"):
        PostgresSeqStore(dsn, "s", table=table, create=False)
    assert row_of(dsn, table, "s") is None
    with PostgresSeqStore(dsn, "s", table=table) as store:
        store.set_next_out(42)
    with PostgresSeqStore(dsn, "s", table=table, create=False) as store:
        assert store.peek_out() == 42


def test_list_sessions(dsn: str, table: str) -> None:
    assert list_sessions(dsn, table=table) == []
    assert not table_exists(dsn, table)  # listing created nothing
    names = ["zeta", "Alpha", "é-session", "alpha", "FIX.4.4:BANK->BROKER"]
    for name in names:
        PostgresSeqStore(dsn, name, table=table).close()
    assert list_sessions(dsn, table=table) == sorted(names)


def test_newer_format_is_refused_and_left_alone(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "s", table=table) as store:
        store.set_next_out(7)
    with admin(dsn) as conn:
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS 'fixseq sessions table, format 2'").format(
                sql.Identifier(table)
            )
        )
    for call in (
        lambda: PostgresSeqStore(dsn, "s", table=table),
        lambda: create_schema(dsn, table=table),
        lambda: list_sessions(dsn, table=table),
    ):
        with pytest.raises(SeqStoreError, match="format 2, newer than this fixseq reads"):
            call()
    assert row_of(dsn, table, "s") == (6, 0)


def test_a_table_fixseq_did_not_make_is_left_alone(dsn: str, table: str) -> None:
    with admin(dsn) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (session text, last_out bigint)").format(sql.Identifier(table))
        )
    with pytest.raises(CorruptStoreError, match="fixseq did not make it"):
        PostgresSeqStore(dsn, "s", table=table)
    with pytest.raises(CorruptStoreError):
        list_sessions(dsn, table=table)
    with pytest.raises(CorruptStoreError):
        PostgresSeqStore(dsn, "s", table="pg_catalog.pg_class")
    with admin(dsn) as conn:
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        assert count.fetchone() == (0,)


def test_a_deleted_row_is_an_error_never_a_new_start(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "s", table=table) as store:
        store.set_next_out(1000)
        with admin(dsn) as conn:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE session = 's'").format(sql.Identifier(table))
            )
        with pytest.raises(CorruptStoreError, match="is gone"):
            store.next_out()
        with pytest.raises(CorruptStoreError, match="is gone"):
            store.peek_out()


def test_counters_out_of_range_are_corrupt(dsn: str, table: str) -> None:
    PostgresSeqStore(dsn, "s", table=table).close()
    with admin(dsn) as conn:
        ident = sql.Identifier(table)
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                ident, sql.Identifier(f"{table}_last_out_check")
            )
        )
        conn.execute(sql.SQL("UPDATE {} SET last_out = -5").format(ident))
    with pytest.raises(CorruptStoreError, match="out of range"):
        PostgresSeqStore(dsn, "s", table=table)


def test_a_dropped_table_is_corrupt(dsn: str, table: str) -> None:
    with PostgresSeqStore(dsn, "s", table=table) as store:
        store.next_out()
        drop_table(dsn, table)
        with pytest.raises(CorruptStoreError, match="does not exist any more"):
            store.next_out()


# -- hostile input -----------------------------------------------------------------------

HOSTILE_SESSIONS = [
    "'; DROP TABLE fixseq_sessions; --",
    'quote"double',
    "back\\slash\\",
    "%s %(x)s {} {t}",
    "$1 $$dollar$$",
    " leading and trailing ",
    "tab\tnew\nline\r",
    "FIX.4.4:BANK->BROKER/Sub=1",
    "emoji 🚀📈 and 中文 and ע",
    "x" * 10_000,
    "y" * 10_000 + "z",  # differs from a similar long name only at the end
]


def test_hostile_session_names_are_isolated(dsn: str, table: str) -> None:
    stores = [PostgresSeqStore(dsn, name, table=table) for name in HOSTILE_SESSIONS]
    try:
        for i, store in enumerate(stores):
            store.set_next_out(1000 + i)
            store.observed_in(2000 + i)
        for i, (name, store) in enumerate(zip(HOSTILE_SESSIONS, stores, strict=True)):
            assert store.snapshot() == SeqState(1000 + i, 2001 + i)
            assert row_of(dsn, table, name) == (999 + i, 2000 + i)
        stores[0].reset()
        assert stores[1].snapshot() == SeqState(1001, 2002)  # a reset touched one row only
    finally:
        for store in stores:
            store.close()
    assert list_sessions(dsn, table=table) == sorted(HOSTILE_SESSIONS)
    assert table_exists(dsn, table)


@pytest.mark.parametrize(
    ("session", "error"),
    [("", ValueError), ("nul\x00inside", ValueError), ("\ud800", ValueError), (None, TypeError)],
)
def test_bad_session_names_are_refused(
    dsn: str, table: str, session: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        PostgresSeqStore(dsn, session, table=table)
    assert not table_exists(dsn, table)  # refused before anything was created


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1starts_with_digit",
        "has space",
        "semi;colon",
        'quote"d',
        "x; DROP TABLE fixseq_sessions",
        "a.b.c",
        ".leading",
        "trailing.",
        "x" * 64,
        "s." + "x" * 64,
        "tábla",
        "tab\n",
        "fixseq_sessions\n",
        "schema.",
    ],
)
def test_bad_table_names_are_refused(dsn: str, bad: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        PostgresSeqStore(dsn, "s", table=bad)
    with pytest.raises(ValueError, match="identifier"):
        create_schema(dsn, table=bad)
    with pytest.raises(ValueError, match="identifier"):
        list_sessions(dsn, table=bad)


@pytest.mark.parametrize("name", ["select", "Mixed_Case", "x" * 63, "_"])
def test_odd_but_valid_table_names_are_quoted(dsn: str, name: str) -> None:
    try:
        with PostgresSeqStore(dsn, "s", table=name) as store:
            assert store.next_out() == 1
        assert table_exists(dsn, name)
    finally:
        drop_table(dsn, name)


# -- pools ---------------------------------------------------------------------------------


def test_a_pool_passed_in(dsn: str, table: str) -> None:
    app = unique("fixseq_pool")
    # The pool's connections are not in autocommit: the store must commit itself.
    with ConnectionPool(with_app_name(dsn, app), min_size=2, max_size=2, open=True) as pool:
        create_schema(pool, table=table)
        with PostgresSeqStore(pool, "pooled", table=table) as store:
            assert [store.next_out() for _ in range(3)] == [1, 2, 3]
            store.observed_in(4)
            assert row_of(dsn, table, "pooled") == (3, 4)  # committed, seen from outside
            assert list_sessions(pool, table=table) == ["pooled"]
            # A broken pooled connection: the call fails, the pool replaces it, calls go on.
            assert terminate(dsn, app) == 2
            failures = 0
            for _ in range(3):
                try:
                    store.next_out()
                except StoreIOError:
                    failures += 1
            assert 1 <= failures <= 2  # each dead connection fails one call, at most
            assert store.next_out() > 3
        assert not pool.closed  # the store never closes the application's pool
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_pool_that_checks_connections_hides_a_dead_one(dsn: str, table: str) -> None:
    app = unique("fixseq_pool")
    with ConnectionPool(
        with_app_name(dsn, app),
        min_size=1,
        max_size=1,
        open=True,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True},
    ) as pool:
        with PostgresSeqStore(pool, "pooled", table=table) as store:
            assert store.next_out() == 1
            assert terminate(dsn, app) == 1
            assert store.next_out() == 2  # the pool's check replaced it before the call


# -- async ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_twin(dsn: str, table: str) -> None:
    store = await AsyncPostgresSeqStore.open(dsn, "async", table=table)
    async with store:
        assert isinstance(store, AsyncAdminSeqStore)
        assert await store.next_out() == 1
        await store.observed_in(5)
        assert await store.snapshot() == SeqState(2, 6)
        sync = store.as_sync()
        assert sync.next_out() == 2
        assert sync.as_async().wrapped is sync
        numbers: list[int] = []

        async def take(n: int) -> None:
            for _ in range(n):
                numbers.append(await store.next_out())

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(take, 10)
        assert sorted(numbers) == list(range(3, 83))
        await store.set_next_in(3)
        assert await store.current_in() == 3
        assert (await store.creation_time()).tzinfo is not None
        await store.reset()
        assert await store.peek_out() == 1
    assert sync.closed
    with pytest.raises(StoreClosedError):
        await store.next_out()


@pytest.mark.anyio
async def test_async_constructor_and_errors(dsn: str, table: str) -> None:
    store = AsyncPostgresSeqStore(dsn, "async", table=table, create=True)
    await store.aclose()
    with pytest.raises(SeqStoreError, match="create=False"):
        await AsyncPostgresSeqStore.open(dsn, "other", table=table, create=False)
    with pytest.raises(ValueError):
        await AsyncPostgresSeqStore.open(dsn, "", table=table)


@pytest.mark.anyio
async def test_async_twin_never_blocks_the_event_loop(dsn: str, table: str) -> None:
    """next_out waits on a row lock that only the event loop itself can release.

    If the call blocked the loop, the loop could not release the lock: the
    store's lock_timeout would then fail the call instead.
    """
    app = unique("fixseq_async")
    conninfo = make_conninfo(with_app_name(dsn, app), options="-c lock_timeout=10s")
    async with await AsyncPostgresSeqStore.open(conninfo, "s", table=table) as store:
        with admin(dsn) as locker, admin(dsn) as watcher:
            locker.execute("BEGIN")
            locker.execute(
                sql.SQL("SELECT * FROM {} WHERE session = 's' FOR UPDATE").format(
                    sql.Identifier(table)
                )
            )
            result: list[int] = []

            async def send() -> None:
                result.append(await store.next_out())

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(send)
                    # The loop runs while next_out waits in its worker thread: prove it by
                    # watching the server until the store's statement waits for the lock.
                    while True:
                        row = watcher.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                            "AND wait_event_type = 'Lock'",
                            (app,),
                        ).fetchone()
                        if row == (1,):
                            break
                        await anyio.sleep(0.01)
                    assert result == []
                    locker.execute("COMMIT")
        assert result == [1]


def test_sync_and_async_twins_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    renames = {"aclose": "close", "as_sync": "as_async", "open": None}
    mapped = {renames.get(n, n) for n in public(AsyncPostgresSeqStore)} - {None}
    sync_only = {"closed", "session", "table"}  # attributes, not calls
    assert mapped == public(PostgresSeqStore) - sync_only | {"wrapped"}
