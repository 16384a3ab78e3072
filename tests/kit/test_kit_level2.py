"""The kit's second level: damaged files, simulated power cuts, every failed group reported.

Each mutant of :mod:`kit_files` leaves out one part of a durable store's
recipe; the check that must catch it is run through the public entry point
and its message matched. The correct stores pass the same checks.
"""

from __future__ import annotations

import builtins
import io
import itertools
import os
import re
from typing import TYPE_CHECKING, Any

import kit_files as kf
import kit_stores as ks
import pytest

from fixseq.testing import (
    SeqStoreContract,
    check_power_cut,
    check_seq_store,
)
from fixseq.testing._damage import FULL_DAMAGE_LIMIT, Damage, damages
from fixseq.testing._powercut import _Disk
from fixseq.testing._recorder import Op

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _maker(tmp_path: Path, store: type[kf.CrcFileStore]) -> Callable[[], kf.CrcFileStore]:
    counter = itertools.count(1)
    return lambda: store(tmp_path / f"store-{next(counter)}.seq")


def _in_dir(store: type[kf.CrcFileStore]) -> Callable[[str], kf.CrcFileStore]:
    return lambda directory: store(os.path.join(directory, "session.seq"))


# -- the correct stores pass ------------------------------------------------------------


def test_a_correct_file_store_passes_every_group(tmp_path: Path) -> None:
    check_seq_store(
        _maker(tmp_path, kf.CrcFileStore),
        reopen=kf.reopen_crc,
        files=kf.crc_files,
        max_examples=15,
    )
    check_power_cut(_in_dir(kf.CrcFileStore), directory=tmp_path)


def test_a_correct_store_writing_through_open_passes(tmp_path: Path) -> None:
    check_seq_store(
        _maker(tmp_path, kf.BuiltinOpenStore),
        reopen=kf.reopen_crc,
        files=kf.crc_files,
        groups={"reopen", "damage"},
    )
    check_power_cut(_in_dir(kf.BuiltinOpenStore), directory=tmp_path)


class TestCrcFileStoreContract(SeqStoreContract[kf.CrcFileStore]):
    """The contract class with store_files and open_store_in: every test runs."""

    max_examples = 10
    threads = 4

    def make_store(self) -> kf.CrcFileStore:
        return kf.CrcFileStore(self.fresh_path(".seq"))

    def reopen_store(self, store: kf.CrcFileStore) -> kf.CrcFileStore:
        return kf.reopen_crc(store)

    def store_files(self, store: kf.CrcFileStore) -> list[str]:
        return [store.path]

    def open_store_in(self, directory: Path) -> kf.CrcFileStore:
        return kf.CrcFileStore(directory / "session.seq")


class _NoFiles(SeqStoreContract[ks.DictSeqStore]):
    def make_store(self) -> ks.DictSeqStore:
        return ks.DictSeqStore()


def test_a_store_without_files_skips_damage_and_power_cut_with_the_reason() -> None:
    contract = _NoFiles()
    with pytest.raises(pytest.skip.Exception, match="no files= was given"):
        contract.test_damage()
    with pytest.raises(pytest.skip.Exception, match=r"no open_store_in\(\)"):
        contract.test_power_cut()


# -- the mutants are caught -------------------------------------------------------------


def test_never_syncing_is_caught_by_the_power_cut(tmp_path: Path) -> None:
    with pytest.raises(
        AssertionError,
        match=r"\[power_cut\] NeverSyncs: \d+ of \d+ simulated power cuts broke the contract: "
        r"a power cut after operation \d+ .*every unsynced write dropped: reopened at "
        r"peek_out\(\)=1, current_in\(\)=1; it silently started again at 1",
    ):
        check_power_cut(_in_dir(kf.NeverSyncs), directory=tmp_path)


def test_a_flush_without_fsync_through_open_is_caught(tmp_path: Path) -> None:
    # The writes go through the builtin open(): the kit must see them, and
    # see that nothing syncs them.
    with pytest.raises(AssertionError, match=r"\[power_cut\] BuiltinOpenNeverSyncs: .*again"):
        check_power_cut(_in_dir(kf.BuiltinOpenNeverSyncs), directory=tmp_path)


def test_path_write_bytes_and_replace_without_sync_is_caught(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"\[power_cut\] WriteBytesNoSync: .*again at 1"):
        check_power_cut(_in_dir(kf.WriteBytesNoSync), directory=tmp_path, steps=60)


def test_a_correct_store_on_named_temporary_files_passes(tmp_path: Path) -> None:
    # NamedTemporaryFile opens the directory's path with an opener: still seen.
    check_power_cut(_in_dir(kf.TempfileStore), directory=tmp_path, steps=60)


def test_a_missing_directory_sync_is_caught(tmp_path: Path) -> None:
    with pytest.raises(
        AssertionError,
        match=r"\[power_cut\] NoDirSync: .*0 of \d+ unsynced directory changes kept, .*"
        r"silently started again at 1",
    ):
        check_power_cut(_in_dir(kf.NoDirSync), directory=tmp_path)


def test_an_in_place_rewrite_without_checksum_is_caught_by_damage(tmp_path: Path) -> None:
    # One small write in one sector: a power cut cannot tear it, so that check passes...
    check_power_cut(_in_dir(kf.InPlaceNoChecksum), directory=tmp_path)
    # ...but a flipped digit reads back as another number.
    with pytest.raises(
        AssertionError,
        match=r"\[damage\] InPlaceNoChecksum: after 20 next_out\(\) and observed_in\(\) pairs "
        r"\(acknowledged: peek_out\(\)=21, current_in\(\)=21\) and a close, \d+ of \d+ damaged "
        r"files reopened in a wrong state: store-\d+\.seq byte \d+ of 42 XOR 0x01: reopened at "
        r"peek_out\(\)=\d+, current_in\(\)=\d+; ",
    ):
        check_seq_store(
            _maker(tmp_path, kf.InPlaceNoChecksum),
            reopen=kf.reopen_crc,
            files=kf.crc_files,
            groups={"damage"},
        )


def test_starting_again_at_one_on_an_empty_file_is_caught(tmp_path: Path) -> None:
    with pytest.raises(
        AssertionError,
        match=r"\[damage\] StartsAtOne: .*: store-\d+\.seq emptied \(all \d+ bytes cut\): "
        r"reopened at peek_out\(\)=1, current_in\(\)=1; it silently started again at 1",
    ):
        check_seq_store(
            _maker(tmp_path, kf.StartsAtOne),
            reopen=kf.reopen_crc,
            files=kf.crc_files,
            groups={"damage"},
        )


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (kf.FileOverflowOnHuge, r"observed_in\(MAX_SEQ_NUM \+ 1\) raised OverflowError"),
        (kf.AssertsOnBadInput, r"observed_in\(0\) raised AssertionError\(bad seq num\)"),
    ],
)
def test_bad_input_raising_the_wrong_exception_is_caught(
    tmp_path: Path, store: type[kf.CrcFileStore], message: str
) -> None:
    with pytest.raises(AssertionError, match=rf"\[validation\] {store.__name__}: {message}"):
        check_seq_store(_maker(tmp_path, store), groups={"validation"})


def test_a_store_that_refuses_every_damaged_file_passes_damage(tmp_path: Path) -> None:
    # Refusing to open is always accepted (CrcFileStore raises on every damage);
    # what it must still do is reopen its undamaged files exactly.
    class ForgetsOnReopen(kf.CrcFileStore):
        def _load(self, data: bytes) -> tuple[int, int]:
            return 5, 5

    with pytest.raises(AssertionError, match=r"reopening the undamaged files came back at"):
        check_seq_store(
            _maker(tmp_path, ForgetsOnReopen),
            reopen=kf.reopen_crc,
            files=kf.crc_files,
            groups={"damage"},
        )


# -- I/O the kit cannot see is skipped, never passed -----------------------------------


def test_sqlite_is_skipped_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(
        pytest.skip.Exception,
        match=r"power cut not checked: db\.sqlite is in the store's directory, but the kit saw "
        r"no operation make it: .*sqlite3",
    ):
        check_power_cut(lambda d: kf.SqliteStore(os.path.join(d, "db.sqlite")), directory=tmp_path)


def test_a_store_kept_elsewhere_is_skipped_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(
        pytest.skip.Exception, match=r"the store wrote no file in its directory that the kit"
    ):
        check_power_cut(kf.ElsewhereStore, directory=tmp_path)


def test_writes_the_kit_cannot_see_are_skipped(tmp_path: Path) -> None:
    # os.pwrite bound before the run: the kit never sees those writes.
    hidden_pwrite = os.pwrite

    class Hidden(kf.InPlaceNoChecksum):
        def _save(self, next_out: int, next_in: int) -> None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                hidden_pwrite(fd, self._encode(next_out, next_in), 0)
                os.fdatasync(fd)
            finally:
                os.close(fd)

    with pytest.raises(
        pytest.skip.Exception, match=r"session\.seq differs from what the kit modelled"
    ):
        check_power_cut(_in_dir(Hidden), directory=tmp_path)


# -- the recorder puts everything back and leaves other I/O alone ---------------------------


def test_the_recorder_restores_every_function(tmp_path: Path) -> None:
    before = {name: getattr(os, name) for name in ("open", "close", "write", "pwrite", "fsync")}
    opened = builtins.open
    with pytest.raises(AssertionError):
        check_power_cut(_in_dir(kf.NeverSyncs), directory=tmp_path)
    assert {name: getattr(os, name) for name in before} == before
    assert builtins.open is opened
    assert io.open is opened


def test_a_store_that_raises_mid_run_still_gets_everything_restored(tmp_path: Path) -> None:
    class Breaks(kf.CrcFileStore):
        def next_out(self) -> int:
            if self._out > 5:
                raise OSError("disk gone")
            return super().next_out()

    opened = builtins.open
    with pytest.raises(AssertionError, match=r"next_out\(\) raised OSError: disk gone"):
        check_power_cut(_in_dir(Breaks), directory=tmp_path)
    assert builtins.open is opened
    assert os.write.__module__ == "posix"


def test_the_power_cut_check_is_deterministic(tmp_path: Path) -> None:
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            check_power_cut(_in_dir(kf.NeverSyncs), directory=tmp_path, steps=60)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_max_states_bounds_the_images_opened(tmp_path: Path) -> None:
    opened: list[str] = []

    def make(directory: str) -> kf.CrcFileStore:
        opened.append(directory)
        return kf.NeverSyncs(os.path.join(directory, "session.seq"))

    with pytest.raises(AssertionError, match=r"of 7 simulated power cuts"):
        check_power_cut(make, directory=tmp_path, max_states=7)
    # The run's own two opens, the final image, and at most seven crash images.
    assert len(opened) <= 2 + 1 + 7


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"steps": 1}, ValueError),
        ({"steps": 2.0}, TypeError),
        ({"max_states": 0}, ValueError),
        ({"seed": "1"}, TypeError),
    ],
)
def test_check_power_cut_rejects_bad_parameters(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        check_power_cut(_in_dir(kf.CrcFileStore), **kwargs)


# -- the crash model itself -----------------------------------------------------------------


def test_a_write_across_sectors_is_torn_at_each_boundary() -> None:
    disk = _Disk()
    disk.apply(Op("create", name="f", ino=1))
    disk.apply(Op("dirsync"))
    disk.apply(Op("write", ino=1, offset=500, data=b"x" * 600))
    contents = {files["f"] for _, files in disk.images()}
    # dropped, kept, and torn at 512 (12 bytes kept) and at 1024 (524 bytes kept)
    assert contents == {b"", b"\0" * 500 + b"x" * 600, b"\0" * 500 + b"x" * 12,
                        b"\0" * 500 + b"x" * 524}  # fmt: skip


def test_an_unsynced_rename_can_be_undone() -> None:
    disk = _Disk()
    disk.apply(Op("create", name="f", ino=1))
    disk.apply(Op("write", ino=1, offset=0, data=b"old"))
    disk.apply(Op("sync", ino=1))
    disk.apply(Op("dirsync"))
    disk.apply(Op("create", name="f.tmp", ino=2))
    disk.apply(Op("write", ino=2, offset=0, data=b"new"))
    disk.apply(Op("sync", ino=2))
    disk.apply(Op("rename", name="f.tmp", target="f"))
    seen = {tuple(sorted(files.items())) for _, files in disk.images()}
    assert (("f", b"old"),) in seen  # the rename undone
    assert (("f", b"new"),) in seen  # the rename kept
    assert (("f", b"old"), ("f.tmp", b"new")) in seen  # created, not yet renamed


def test_damages_cover_every_byte_and_length_of_a_small_file() -> None:
    data = bytes(range(100))
    found = list(damages(data, sample=5))
    assert Damage(0, 0) in found  # emptied
    assert {d.offset for d in found if d.xor == 0x01} == set(range(100))
    assert {d.offset for d in found if d.xor == 0xFF} == set(range(100))
    assert {d.offset for d in found if d.xor == 0} == set(range(100))
    assert len(found) == 300
    assert Damage(3, 0xFF).apply(b"abcd") == b"abc\x9b"
    assert Damage(2, 0).apply(b"abcd") == b"ab"


def test_damages_sample_a_large_file_deterministically() -> None:
    data = bytearray(3 * FULL_DAMAGE_LIMIT)
    data[4096:4140] = b"\x07" * 44  # a record in the middle of zeros
    first = list(damages(bytes(data), sample=200))
    assert first == list(damages(bytes(data), sample=200))
    flipped = {d.offset for d in first if d.xor == 0x01}
    assert len(flipped) == 200
    assert set(range(4096, 4144)) <= flipped  # the record's bytes all come first
    assert len([d for d in first if d.xor == 0]) == 1 + 200  # emptied, and the sample


# -- every failed group is reported -----------------------------------------------------------


def test_every_failed_group_is_reported_not_only_the_first() -> None:
    with pytest.raises(AssertionError) as info:
        check_seq_store(ks.PeekAdvances, max_examples=5)
    text = str(info.value)
    assert re.match(r"\[basics\] PeekAdvances: ", text)
    listed = re.search(r"(\d+) check groups failed: ([a-z_, ]+)", text)
    assert listed is not None
    names = listed.group(2).split(", ")
    assert names[0] == "basics"
    assert len(names) == int(listed.group(1)) >= 2
    for name in names[1:]:
        assert f"\n[{name}] PeekAdvances: " in text


def test_a_group_that_crashes_does_not_hide_the_others() -> None:
    calls = itertools.count()

    def make() -> ks.DictSeqStore:
        if next(calls) == 1:  # the basics group's store
            raise KeyError("no store today")
        return ks.PeekAdvances()

    with pytest.raises(AssertionError) as info:
        check_seq_store(make, max_examples=3, groups={"protocol", "basics", "long_run"})
    text = str(info.value)
    assert text.startswith("[basics] the check raised KeyError: 'no store today'")
    assert "2 check groups failed: basics, long_run" in text


def test_groups_selects_and_validates() -> None:
    # SkipsLate fails only the long run: left out, the run passes.
    check_seq_store(ks.SkipsLate, groups={"protocol", "basics", "validation"})
    with pytest.raises(ValueError, match="unknown check group"):
        check_seq_store(ks.DictSeqStore, groups={"damages"})
    with pytest.raises(TypeError, match="not a str"):
        check_seq_store(ks.DictSeqStore, groups="damage")


def test_fixseq_sqlite_store_is_skipped_never_passed(tmp_path: Path) -> None:
    from fixseq import SqliteSeqStore

    with pytest.raises(pytest.skip.Exception, match=r"power cut not checked: .*sqlite3"):
        check_power_cut(
            lambda directory: SqliteSeqStore(os.path.join(directory, "s.db"), "FIX.4.4:A->B"),
            directory=tmp_path,
            steps=20,
        )
