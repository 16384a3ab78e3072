"""The conformance kit (fixseq.testing) on the SQLite store, sync and async, with reopen."""

from __future__ import annotations

import itertools
from typing import ClassVar

from fixseq import AsyncSqliteSeqStore, SqliteSeqStore
from fixseq.testing import AsyncSeqStoreContract, SeqStoreContract

SESSION = "FIX.4.4:BANK->BROKER"


class TestSqliteSeqStoreContract(SeqStoreContract[SqliteSeqStore]):
    """A fresh database per store, reopened with create=False (the session must survive)."""

    max_examples: ClassVar[int] = 25

    def make_store(self) -> SqliteSeqStore:
        return SqliteSeqStore(self.fresh_path(".db"), SESSION)

    def reopen_store(self, store: SqliteSeqStore) -> SqliteSeqStore:
        store.close()
        return SqliteSeqStore(store.path, store.session, create=False)


class TestSqliteSessionsInOneFileContract(SeqStoreContract[SqliteSeqStore]):
    """Every store a new session (hostile names) in one shared file: sessions must not mix."""

    max_examples: ClassVar[int] = 25
    _names = itertools.count(1)

    def make_store(self) -> SqliteSeqStore:
        name = f"'; DROP TABLE fixseq_sessions; -- \U0001f680 {next(self._names)}"
        return SqliteSeqStore(self.tmp_path / "shared.db", name, synchronous="NORMAL")

    def reopen_store(self, store: SqliteSeqStore) -> SqliteSeqStore:
        store.close()
        return SqliteSeqStore(store.path, store.session, synchronous="NORMAL", create=False)


class TestAsyncSqliteSeqStoreContract(AsyncSeqStoreContract[AsyncSqliteSeqStore]):
    """The async twin under asyncio and trio, opened and reopened in a worker thread."""

    max_examples: ClassVar[int] = 25

    async def make_store(self) -> AsyncSqliteSeqStore:
        return await AsyncSqliteSeqStore.open(self.fresh_path(".db"), SESSION)

    async def reopen_store(self, store: AsyncSqliteSeqStore) -> AsyncSqliteSeqStore:
        await store.aclose()
        return await AsyncSqliteSeqStore.open(store.path, store.session, create=False)


class TestSqliteReservingContract(SeqStoreContract[SqliteSeqStore]):
    """reserve=3: blocks handed out from memory, given back on close, exact after reopen."""

    max_examples: ClassVar[int] = 25

    def make_store(self) -> SqliteSeqStore:
        return SqliteSeqStore(self.fresh_path(".db"), SESSION, reserve=3)

    def reopen_store(self, store: SqliteSeqStore) -> SqliteSeqStore:
        store.close()
        return SqliteSeqStore(store.path, store.session, create=False, reserve=3)
