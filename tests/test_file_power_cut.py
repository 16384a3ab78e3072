"""FileSeqStore under the kit's second level: damaged files and simulated power cuts.

With ``fsync=True`` every acknowledged change is on the device, so no crash
image and no damage makes the store reuse a number or lose an inbound mark.
With ``fsync=False`` a change reaches the page cache only: it survives a
killed process, not a power cut, and the power-cut check must say so.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

import pytest

from fixseq import AsyncFileSeqStore, FileSeqStore
from fixseq.testing import (
    check_async_power_cut,
    check_async_seq_store,
    check_power_cut,
    check_seq_store,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync", "nofsync"])
def test_damaged_files_never_make_the_file_store_reuse_a_number(
    tmp_path: Path, fsync: bool
) -> None:
    counter = itertools.count(1)

    def make() -> FileSeqStore:
        return FileSeqStore(tmp_path / f"store-{next(counter)}.seq", fsync=fsync)

    def reopen(store: FileSeqStore) -> FileSeqStore:
        store.close()  # the damage group hands over a store it already closed
        return FileSeqStore(store.path, fsync=fsync, create=False)

    check_seq_store(make, reopen=reopen, files=lambda store: [store.path], groups={"damage"})


@pytest.mark.parametrize("reserve", [1, 10])
def test_no_power_cut_makes_the_synced_file_store_reuse_a_number(
    tmp_path: Path, reserve: int
) -> None:
    check_power_cut(
        lambda directory: FileSeqStore(
            os.path.join(directory, "session.seq"), fsync=True, reserve=reserve
        ),
        directory=tmp_path,
    )


def test_the_power_cut_check_flags_the_file_store_without_fsync(tmp_path: Path) -> None:
    # Expected, and documented: fsync=False trades power-cut safety for speed.
    with pytest.raises(
        AssertionError,
        match=r"\[power_cut\] FileSeqStore: \d+ of \d+ simulated power cuts broke the "
        r"contract: .*every unsynced write dropped: reopened at .*(again at 1|hand out)",
    ):
        check_power_cut(
            lambda directory: FileSeqStore(os.path.join(directory, "session.seq"), fsync=False),
            directory=tmp_path,
        )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_file_store_under_damage_and_power_cuts(tmp_path: Path, backend: str) -> None:
    counter = itertools.count(1)

    async def make() -> AsyncFileSeqStore:
        return await AsyncFileSeqStore.open(tmp_path / f"store-{next(counter)}.seq")

    async def reopen(store: AsyncFileSeqStore) -> AsyncFileSeqStore:
        await store.aclose()
        return await AsyncFileSeqStore.open(store.path, create=False)

    check_async_seq_store(
        make,
        reopen=reopen,
        files=lambda store: [store.path],
        groups={"damage"},
        backend=backend,
        damage_sample=256,
    )
    check_async_power_cut(
        lambda directory: AsyncFileSeqStore.open(os.path.join(directory, "session.seq")),
        directory=tmp_path,
        steps=80,
        backend=backend,
    )


@pytest.mark.parametrize("step", ["_sync_dir", "_sync_file"])
def test_the_power_cut_check_catches_a_file_store_missing_a_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    # The store's own recipe with one sync taken out: the kit must notice.
    import fixseq._file

    monkeypatch.setattr(fixseq._file, step, lambda target: None)
    caught = r"\[power_cut\] FileSeqStore: .*(again at 1|hand out)"
    with pytest.raises(AssertionError, match=caught):
        check_power_cut(
            lambda directory: FileSeqStore(os.path.join(directory, "session.seq")),
            directory=tmp_path,
            steps=40,
        )
