"""The conformance kit (fixseq.testing) on the file stores, with reopen, sync and async.

Each acknowledged change must survive a close and reopen made right after it;
the kit's state machine also reopens at random points. The contract classes
give each check group its own test (async: under asyncio and trio, from the
``anyio_backend`` fixture); the one-call checks cover ``fsync=True`` (the real
sync path) and a reservation (which a clean close must turn back into the
exact value).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

from fixseq import AsyncFileSeqStore, FileSeqStore
from fixseq.testing import AsyncSeqStoreContract, SeqStoreContract, check_seq_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


class TestFileSeqStoreContract(SeqStoreContract[FileSeqStore]):
    def make_store(self) -> FileSeqStore:
        return FileSeqStore(self.fresh_path(".seq"), fsync=False)

    def reopen_store(self, store: FileSeqStore) -> FileSeqStore:
        store.close()  # idempotent: the kit may hand over a closed store
        return FileSeqStore(store.path, fsync=False, create=False)

    def store_files(self, store: FileSeqStore) -> list[str]:
        return [store.path]

    def open_store_in(self, directory: Path) -> FileSeqStore:
        # fsync=True: the power-cut check rightly flags fsync=False.
        return FileSeqStore(directory / "session.seq")


class TestAsyncFileSeqStoreContract(AsyncSeqStoreContract[AsyncFileSeqStore]):
    max_examples = 50

    async def make_store(self) -> AsyncFileSeqStore:
        return await AsyncFileSeqStore.open(self.fresh_path(".seq"), fsync=False)

    async def reopen_store(self, store: AsyncFileSeqStore) -> AsyncFileSeqStore:
        await store.aclose()
        return await AsyncFileSeqStore.open(store.path, fsync=False, create=False)

    def store_files(self, store: AsyncFileSeqStore) -> list[str]:
        return [store.path]

    async def open_store_in(self, directory: Path) -> AsyncFileSeqStore:
        return await AsyncFileSeqStore.open(directory / "session.seq")


def _paths(tmp_path: Path) -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(tmp_path / f"store-{next(counter)}.seq")


@pytest.mark.parametrize(
    ("fsync", "reserve", "examples"),
    [(True, 1, 30), (False, 10, 50)],
    ids=["fsync", "nofsync-reserve-10"],
)
def test_the_file_store_keeps_the_contract_across_reopens(
    tmp_path: Path, fsync: bool, reserve: int, examples: int
) -> None:
    fresh = _paths(tmp_path)

    def make() -> FileSeqStore:
        return FileSeqStore(fresh(), fsync=fsync, reserve=reserve)

    def reopen(store: FileSeqStore) -> FileSeqStore:
        store.close()
        return FileSeqStore(store.path, fsync=fsync, create=False, reserve=reserve)

    check_seq_store(make, reopen=reopen, max_examples=examples)
