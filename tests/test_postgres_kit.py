"""The conformance kit (fixseq.testing) on the PostgreSQL store, sync and async, with reopen.

The stores borrow connections from one pool per test: the kit makes a store per Hypothesis
example and drops it without closing it, and a pool keeps the server's connection count bounded.
``reopen`` closes the store and opens the same session again: every acknowledged change must be
back.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest
from postgres_support import drop_table, require_dsn, unique

from fixseq.postgres import AsyncPostgresSeqStore, PostgresSeqStore, create_schema
from fixseq.testing import check_async_seq_store, check_seq_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from psycopg_pool import ConnectionPool

# The model's examples each cost a few server commits; the sync run explores more, the two
# async runs (the same store through its twin) fewer.
SYNC_EXAMPLES = 40
ASYNC_EXAMPLES = 15


@pytest.fixture
def pooled() -> Iterator[tuple[ConnectionPool[Any], str]]:
    from psycopg_pool import ConnectionPool

    dsn = require_dsn()
    table = unique("fixseq_kit")
    create_schema(dsn, table=table)
    # Enough connections for the kit's concurrent threads (8) and then some.
    with ConnectionPool(dsn, min_size=2, max_size=12, open=True, kwargs={"autocommit": True}) as p:
        yield p, table
    drop_table(dsn, table)


def session_names() -> Callable[[], str]:
    counter = itertools.count()
    prefix = unique("kit")
    return lambda: f"{prefix}-{next(counter)}"


def test_kit_sync_with_reopen(pooled: tuple[ConnectionPool[Any], str]) -> None:
    pool, table = pooled
    name = session_names()

    def make_store() -> PostgresSeqStore:
        return PostgresSeqStore(pool, name(), table=table)

    def reopen(store: PostgresSeqStore) -> PostgresSeqStore:
        store.close()
        return PostgresSeqStore(pool, store.session, table=table, create=False)

    check_seq_store(make_store, reopen=reopen, threads=8, max_examples=SYNC_EXAMPLES)


def test_kit_sync_reserving_with_reopen(pooled: tuple[ConnectionPool[Any], str]) -> None:
    """reserve=3: blocks handed out from memory, given back on close, exact after reopen."""
    pool, table = pooled
    name = session_names()

    def make_store() -> PostgresSeqStore:
        return PostgresSeqStore(pool, name(), table=table, reserve=3)

    def reopen(store: PostgresSeqStore) -> PostgresSeqStore:
        store.close()
        return PostgresSeqStore(pool, store.session, table=table, create=False, reserve=3)

    check_seq_store(make_store, reopen=reopen, threads=8, max_examples=ASYNC_EXAMPLES)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_kit_async_with_reopen(pooled: tuple[ConnectionPool[Any], str], backend: str) -> None:
    pool, table = pooled
    name = session_names()

    async def make_store() -> AsyncPostgresSeqStore:
        return await AsyncPostgresSeqStore.open(pool, name(), table=table)

    async def reopen(store: AsyncPostgresSeqStore) -> AsyncPostgresSeqStore:
        await store.aclose()
        session = store.as_sync().session
        return await AsyncPostgresSeqStore.open(pool, session, table=table, create=False)

    check_async_seq_store(
        make_store, reopen=reopen, tasks=20, max_examples=ASYNC_EXAMPLES, backend=backend
    )


@pytest.mark.slow
def test_kit_sync_on_own_connections() -> None:
    """Once without a pool: each store on its own connection (a soak run: --slow)."""
    dsn = require_dsn()
    table = unique("fixseq_kit")
    name = session_names()
    made: list[PostgresSeqStore] = []

    def make_store() -> PostgresSeqStore:
        # At most a few stores stay open: the kit is done with a store once it asks for the next.
        while len(made) > 2:
            made.pop(0).close()
        made.append(PostgresSeqStore(dsn, name(), table=table))
        return made[-1]

    def reopen(store: PostgresSeqStore) -> PostgresSeqStore:
        store.close()
        made.append(PostgresSeqStore(dsn, store.session, table=table, create=False))
        return made[-1]

    try:
        check_seq_store(make_store, reopen=reopen, threads=8, max_examples=20)
    finally:
        for store in made:
            store.close()
        drop_table(dsn, table)
