"""The conformance kit (fixseq.testing) on the file stores, with reopen, sync and async.

Each acknowledged change must survive a close and reopen made right after it;
the kit's state machine also reopens at random points. Skipped, with the
reason, where the kit is not part of this checkout yet.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest

from fixseq import AsyncFileSeqStore, FileSeqStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

kit: Any = pytest.importorskip("fixseq.testing", reason="the conformance kit is not here yet")


def _paths(tmp_path: Path) -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(tmp_path / f"store-{next(counter)}.seq")


@pytest.mark.parametrize(
    ("fsync", "examples"), [(True, 30), (False, 100)], ids=["fsync", "nofsync"]
)
def test_the_file_store_keeps_the_contract_across_reopens(
    tmp_path: Path, fsync: bool, examples: int
) -> None:
    fresh = _paths(tmp_path)

    def make() -> FileSeqStore:
        return FileSeqStore(fresh(), fsync=fsync)

    def reopen(store: FileSeqStore) -> FileSeqStore:
        store.close()  # idempotent: the kit may hand over a closed store
        return FileSeqStore(store.path, fsync=fsync, create=False)

    kit.check_seq_store(make, reopen=reopen, max_examples=examples)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_file_store_keeps_the_contract_across_reopens(
    tmp_path: Path, backend: str
) -> None:
    fresh = _paths(tmp_path)

    async def make() -> AsyncFileSeqStore:
        return await AsyncFileSeqStore.open(fresh(), fsync=False)

    async def reopen(store: AsyncFileSeqStore) -> AsyncFileSeqStore:
        await store.aclose()
        return await AsyncFileSeqStore.open(store.path, fsync=False, create=False)

    kit.check_async_seq_store(make, reopen=reopen, max_examples=50, backend=backend)
