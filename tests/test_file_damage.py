"""Damaged and torn store files: guarantee 3, checked exhaustively.

For real store files, taken right after each kind of change, every single
byte is flipped (XOR 0x01 and 0xFF), the file is cut to every length, and the
slot being written is torn at every byte. Each damaged image must either be
refused (CorruptStoreError) or give a state that reuses no outbound number
acknowledged so far and whose inbound mark is not ahead of the acknowledged
one (it may come back one change behind). Never a silent 1.

The images are decoded by the one parser FileSeqStore and read_file_state
share; a sample is also opened as real files through both.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixseq import MAX_SEQ_NUM, CorruptStoreError, FileSeqStore, SeqState
from fixseq._file import read_file_state
from fixseq._fileformat import FILE_SIZE, MAX_GROUP_HEADROOM, parse

if TYPE_CHECKING:
    from pathlib import Path


class State(NamedTuple):
    next_out: int
    next_in: int
    created: datetime.datetime


@dataclass
class Step:
    """One acknowledged change: the states around it and the writes it made."""

    label: str
    before: State  # acknowledged before the change
    after: State  # acknowledged by the change
    image_before: bytes
    image_after: bytes
    writes: list[tuple[int, bytes]]  # (offset, data) of each pwrite, in order


def _state(store: FileSeqStore) -> State:
    snapshot = store.snapshot()
    return State(snapshot.next_out, snapshot.next_in, store.creation_time())


def _record_history(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Step]:
    writes: list[tuple[int, bytes]] = []
    real = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        writes.append((offset, bytes(data)))
        return real(fd, data, offset)

    steps: list[Step] = []
    with FileSeqStore(path, session="FIX.4.4:S->T") as store:
        for _ in range(5):
            store.next_out()
        store.observed_in(4)
        monkeypatch.setattr(os, "pwrite", pwrite)
        changes = [
            ("next_out", store.next_out),
            ("observed_in up", lambda: store.observed_in(9)),
            ("next_out again", store.next_out),
            ("set_next_in down", lambda: store.set_next_in(3)),
            ("set_next_out up", lambda: store.set_next_out(100)),
            ("next_out after a jump", store.next_out),
            ("set_next_out down", lambda: store.set_next_out(50)),
            ("reset", store.reset),
            ("next_out after reset", store.next_out),
            ("observed_in after reset", lambda: store.observed_in(1)),
        ]
        for label, change in changes:
            before, image_before = _state(store), path.read_bytes()
            writes.clear()
            change()
            steps.append(
                Step(label, before, _state(store), image_before, path.read_bytes(), list(writes))
            )
        monkeypatch.undo()
    return steps


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> list[Step]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _record_history(tmp_path_factory.mktemp("damage") / "s.seq", monkeypatch)


def _decode(image: bytes) -> State | None:
    """The state a reopen would resume from, or None if the image is refused."""
    try:
        parsed = parse(image, "image")
    except CorruptStoreError:
        return None
    return State(parsed.next_out, parsed.next_in, parsed.created)


EVERYDAY = {"next_out", "observed_in up", "next_out again", "next_out after reset"}


def _check_damaged(step: Step, got: State | None, damage: str) -> None:
    if got is None:
        return  # refused: allowed, never a silent restart
    acked, before = step.after, step.before
    where = f"{step.label}, {damage}: got {got}, acknowledged {acked}"
    assert got.next_out >= acked.next_out, f"reuses outbound numbers: {where}"
    assert got.next_in <= acked.next_in, f"inbound mark ahead: {where}"
    assert got.next_in in (acked.next_in, before.next_in), f"inbound more than one behind: {where}"
    assert got.created in (acked.created, before.created), f"foreign creation time: {where}"
    if step.label in EVERYDAY:
        # Everyday changes after everyday changes cost at most one skipped number.
        assert got.next_out <= acked.next_out + 1, f"skips too far: {where}"


def test_the_history_is_what_the_changes_say(history: list[Step]) -> None:
    for step in history:
        assert _decode(step.image_after) == step.after, step.label
        assert _decode(step.image_before) == step.before, step.label
    counts = {step.label: len(step.writes) for step in history}
    assert counts["next_out"] == counts["observed_in up"] == 1
    assert counts["set_next_in down"] == counts["reset"] == 2  # both slots


def test_every_single_byte_flip_is_refused_or_safe(history: list[Step]) -> None:
    refused = 0
    for step in history:
        image = bytearray(step.image_after)
        for index in range(FILE_SIZE):
            original = image[index]
            for mask in (0x01, 0xFF):
                image[index] = original ^ mask
                got = _decode(bytes(image))
                refused += got is None
                _check_damaged(step, got, f"byte {index} ^ {mask:#04x}")
            image[index] = original
    # The header is covered by its CRC: a flip there refuses the file.
    assert refused >= len(history) * 2 * 22


def test_every_truncation_and_any_extension_is_refused(history: list[Step]) -> None:
    for step in history:
        for length in range(FILE_SIZE):
            assert _decode(step.image_after[:length]) is None, (step.label, length)
        assert _decode(step.image_after + b"\0") is None


def test_a_write_torn_at_any_byte_never_reuses_a_number(history: list[Step]) -> None:
    for step in history:
        image = bytearray(step.image_before)
        for number, (offset, data) in enumerate(step.writes):
            for cut in range(len(data) + 1):
                for tail in ("old", "zero"):
                    torn = bytearray(image)
                    torn[offset : offset + cut] = data[:cut]
                    if tail == "zero":
                        torn[offset + cut : offset + len(data)] = bytes(len(data) - cut)
                    got = _decode(bytes(torn))
                    where = f"{step.label}, write {number} torn at {cut} ({tail} tail): {got}"
                    # The change was not acknowledged: the state before it, or
                    # the new one, or a refusal; never behind the state before.
                    if got is not None:
                        assert got.next_out >= min(step.before.next_out, step.after.next_out), where
                        assert got.next_in in (step.before.next_in, step.after.next_in), where
            image[offset : offset + len(data)] = data


def test_the_newest_slot_lost_after_its_acknowledgement_resumes_past_it(
    history: list[Step],
) -> None:
    # The subtle case: a flipped byte in the newest slot looks like a torn write.
    step = history[0]  # a next_out that handed out 6
    offset = step.writes[0][0]
    image = bytearray(step.image_after)
    image[offset + 9] ^= 0x40  # inside last_out
    got = _decode(bytes(image))
    assert got is not None
    assert got.next_out == step.after.next_out  # 7: one past the survivor's 6, not 6 again
    assert got.next_in == step.after.next_in


def test_damaged_files_open_as_the_parser_says_and_the_next_write_repairs_them(
    history: list[Step], tmp_path: Path
) -> None:
    path = tmp_path / "s.seq"
    step = history[1]
    for index in range(0, FILE_SIZE, 97):
        image = bytearray(step.image_after)
        image[index] ^= 0xFF
        path.write_bytes(bytes(image))
        expected = _decode(bytes(image))
        if expected is None:
            with pytest.raises(CorruptStoreError):
                read_file_state(path)
            with pytest.raises(CorruptStoreError):
                FileSeqStore(path)
            continue
        state = read_file_state(path)
        assert (state.state, state.created) == (expected[:2], expected.created)
        with FileSeqStore(path) as store:
            assert store.snapshot() == SeqState(*expected[:2])
            assert store.creation_time() == expected.created
            store.observed_in(store.current_in())
        # After one write both slots are whole again: the state is exact.
        assert read_file_state(path).state == SeqState(expected.next_out, expected.next_in + 1)
    assert path.read_bytes() != step.image_after


def test_both_slots_damaged_is_refused(history: list[Step]) -> None:
    image = bytearray(history[0].image_after)
    image[4096 + 3] ^= 1
    image[8192 + 3] ^= 1
    with pytest.raises(CorruptStoreError, match="both state slots"):
        parse(bytes(image), "image")


# -- any sequence of writes: groups, reservations, jumps --------------------------------

Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 600)),  # a group, or a reserved block
        st.tuples(st.just("in up"), st.integers(1, 50)),
        st.tuples(st.just("in down"), st.integers(1, 50)),
        st.tuples(st.just("set out"), st.integers(1, 10**6)),
        st.tuples(st.just("reset"), st.just(0)),
        st.tuples(st.just("exhaust"), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150)
@given(ops=ops, reserve=st.sampled_from([1, 1, 7, 1000]))
def test_after_any_writes_a_damaged_slot_never_reuses_or_runs_ahead(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Op], reserve: int
) -> None:
    """Drive the store's real write path (its _persist hook) with arbitrary states.

    One write may cover a whole group of callers or a reserved block, so the
    states jump as the core's group commit and reservation make them jump.
    After every write, the file with either slot damaged must resume no lower
    than the written next_out and with an inbound mark at most one write behind.
    """
    path = tmp_path_factory.mktemp("writes") / "s.seq"
    with FileSeqStore(path, fsync=False, reserve=reserve) as store:
        created = store.creation_time()
        current = State(1, 1, store._created)
        for op, value in ops:
            next_out, next_in, stamp = current
            if op == "advance":
                next_out = min(next_out + value, MAX_SEQ_NUM + 1)
            elif op == "in up":
                next_in = min(next_in + value, MAX_SEQ_NUM + 1)
            elif op == "in down":
                next_in = max(1, next_in - value)
            elif op == "set out":
                next_out = value
            elif op == "reset":
                next_out, next_in = 1, 1
                created += datetime.timedelta(seconds=1)
                stamp = created
            else:
                next_out = MAX_SEQ_NUM + 1
            new = State(next_out, next_in, stamp)
            store._persist(*new)
            image = path.read_bytes()
            assert _decode(image) == new
            for slot_offset in (4096, 8192):
                damaged = bytearray(image)
                damaged[slot_offset + 40] ^= 0xFF  # the slot's CRC
                got = _decode(bytes(damaged))
                assert got is not None
                where = f"after {op} {value}: {current} -> {new}, slot at {slot_offset}: {got}"
                assert got.next_out >= new.next_out, f"reuses numbers {where}"
                assert got.next_in <= new.next_in, f"inbound ahead {where}"
                assert got.next_in in (new.next_in, current.next_in), where
                assert got.created in (new.created, current.created), where
                if new.next_out >= current.next_out:
                    # The gap is bounded: a group's size (at most 256) or a reserved block.
                    bound = max(MAX_GROUP_HEADROOM, reserve) + 1
                    assert got.next_out <= new.next_out + bound, f"gap {where}"
            current = new


def test_opening_a_damaged_file_warns_the_operator(
    history: list[Step], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.seq"
    image = bytearray(history[0].image_after)
    image[4096 + 40] ^= 0xFF
    path.write_bytes(bytes(image))
    with caplog.at_level("WARNING", logger="fixseq.file"), FileSeqStore(path) as store:
        assert store.peek_out() >= history[0].after.next_out
    assert "slot 0 is damaged" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="fixseq.file"), FileSeqStore(path):
        pass  # the file was not written: still damaged, still said
    assert "damaged" in caplog.text
