"""The power-cut group: a store's files as a power cut would leave them.

The kit opens the store in an empty directory with ``make_store(directory)``,
drives it (``next_out()`` and ``observed_in()`` in a seeded random mix, with
one close and reopen half way, then a close), and records every file
operation the store makes there (:mod:`._recorder`). It then rebuilds, from
that record, the directory as a power cut after any operation could have left
it on a disk that keeps exactly what was synced:

- a file's content is what its last ``fsync``/``fdatasync`` covered, plus the
  writes made since, kept or dropped: none of them, all of them, or any
  prefix (a disk may write them out in order and stop anywhere), and the first
  write not kept may be torn at a 512-byte sector boundary (its first sectors
  on the disk, the rest not);
- a directory's names are what its last ``fsync`` covered, plus the creations,
  links, renames and removals made since, none, all or a prefix of them: a
  file created or renamed whose directory was not synced may be gone, or back
  under its old name.

Each distinct image (at most ``max_states``) is copied into a fresh directory
and opened with ``make_store``. The store that comes back must hand out no
number acknowledged before the cut (``peek_out()`` above every number
``next_out()`` had returned), must not have its inbound mark below any
acknowledged ``observed_in()`` nor ahead of every ``observed_in()`` begun
before the cut, and must never silently start again at 1. Refusing to open
(an exception) is accepted.

What it cannot simulate: a disk (or a virtual machine, or a RAID card) that
acknowledges a sync it has not made durable; a file system that reorders
writes to one file in ways other than dropping a suffix of them or tearing
at a sector; damage to data that was synced (the damage group covers that);
and I/O the kit cannot see (then it skips, with the reason).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ._handles import Handle, Violation, describe, fail
from ._recorder import Op, Recorder, apply_data, apply_dir, files_after

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["SECTOR", "PowerCutSkip", "run_power_cut"]

T = TypeVar("T")

SECTOR = 512
"""A write may be torn at a multiple of this many bytes (a disk's logical sector)."""

_MAX_REPORTED = 3
_PREFIX_LIMIT = 16  # pending lists up to this long: every prefix; longer: a spread of them
_TEAR_LIMIT = 8  # tear points per write at most
_CANDIDATE_FACTOR = 4  # distinct images collected before sampling down to max_states


class PowerCutSkip(Exception):
    """The kit cannot model this store's I/O; the message says why."""


@dataclass
class _Call:
    """One call the kit made while recording, placed among the operations."""

    start: int  # operations recorded before it began
    end: int  # operations recorded when it returned
    text: str
    kind: str  # "next_out", "observed_in", "open", "close"
    value: int = 0


@dataclass
class _Image:
    """A distinct crash image and the strictest cut it stood for."""

    files: dict[str, bytes]
    first: int  # the first cut (operation count) it appeared at
    out_floor: int = 0
    out_cut: str = ""
    in_floor: int = 1
    in_floor_cut: str = ""
    in_ceiling: int = 1 << 80
    in_ceiling_cut: str = ""
    labels: set[str] = field(default_factory=set)


def _spread(count: int, limit: int) -> list[int]:
    """Indices 0..count, all of them if few, else the ends and an even spread."""
    if count <= limit:
        return list(range(count + 1))
    chosen = {0, count, count - 1, count - 2, count - 3}
    step = count / (limit - 4)
    chosen.update(int(k * step) for k in range(limit - 4))
    return sorted(index for index in chosen if 0 <= index <= count)


def _tears(op: Op) -> list[int]:
    """Byte counts of ``op``'s data kept when torn at a sector boundary (0 excluded)."""
    if op.kind != "write":
        return []
    start, end = op.offset, op.offset + len(op.data)
    first = (start // SECTOR + 1) * SECTOR
    points = [boundary - start for boundary in range(first, end, SECTOR)]
    if len(points) > _TEAR_LIMIT:
        points = [points[int(k * len(points) / _TEAR_LIMIT)] for k in range(_TEAR_LIMIT)]
    return points


class _Disk:
    """The durable and pending state of the directory, operation by operation."""

    def __init__(self) -> None:
        self.entries: dict[str, int] = {}  # durable names
        self.pending_dir: list[Op] = []
        self.durable: dict[int, bytes] = {}
        self.pending: dict[int, list[Op]] = {}

    def apply(self, op: Op) -> None:
        if op.kind in ("create", "link", "rename", "unlink"):
            self.pending_dir.append(op)
            if op.kind == "create":
                self.durable.setdefault(op.ino, b"")
                self.pending.setdefault(op.ino, [])
        elif op.kind in ("write", "trunc"):
            self.pending.setdefault(op.ino, []).append(op)
            self.durable.setdefault(op.ino, b"")
        elif op.kind == "sync":
            self.durable[op.ino] = apply_data(
                self.durable.get(op.ino, b""), self.pending.get(op.ino, [])
            )
            self.pending[op.ino] = []
        elif op.kind == "dirsync":
            self.entries = apply_dir(self.entries, self.pending_dir)
            self.pending_dir = []

    def images(self) -> Iterator[tuple[str, dict[str, bytes]]]:
        """Every crash image of this moment: (how it was made, name -> content)."""
        count = len(self.pending_dir)
        for kept in _spread(count, 6):
            names = apply_dir(self.entries, self.pending_dir[:kept])
            dir_label = "" if not count else f"{kept} of {count} unsynced directory changes kept, "
            full = {
                ino: apply_data(self.durable[ino], self.pending[ino]) for ino in set(names.values())
            }
            dropped = {ino: self.durable[ino] for ino in set(names.values())}
            yield dir_label + "every unsynced write kept", self._named(names, full)
            yield dir_label + "every unsynced write dropped", self._named(names, dropped)
            for ino in sorted(set(names.values())):
                ops = self.pending[ino]
                if not ops:
                    continue
                file = next(name for name, known in names.items() if known == ino)
                content = self.durable[ino]
                done = 0
                for keep in _spread(len(ops), _PREFIX_LIMIT):
                    content = apply_data(content, ops[done:keep])
                    done = keep
                    label = f"{dir_label}{keep} of {len(ops)} unsynced writes to {file} kept"
                    yield label, self._named(names, {**full, ino: content})
                    if keep < len(ops):
                        torn = ops[keep]
                        for length in _tears(torn):
                            partial = Op(
                                "write", ino=ino, offset=torn.offset, data=torn.data[:length]
                            )
                            yield (
                                f"{label}, the next torn after {length} of its "
                                f"{len(torn.data)} bytes",
                                self._named(names, {**full, ino: apply_data(content, [partial])}),
                            )

    @staticmethod
    def _named(names: dict[str, int], contents: dict[int, bytes]) -> dict[str, bytes]:
        return {name: contents[ino] for name, ino in names.items()}


def _key(files: dict[str, bytes]) -> bytes:
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(f"{name}\0{len(data)}\0".encode("utf-8", "surrogateescape"))
        digest.update(data)
    return digest.digest()


def _floors(calls: list[_Call], total: int) -> tuple[list[int], list[int], list[int]]:
    """Per cut (operations kept, 0..total): the acknowledged floors and the inbound ceiling."""
    out_at = [0] * (total + 1)
    in_at = [1] * (total + 1)
    ceiling_at = [1] * (total + 1)
    for call in calls:
        if call.kind == "next_out":
            out_at[call.end] = max(out_at[call.end], call.value)
        elif call.kind == "observed_in":
            in_at[call.end] = max(in_at[call.end], call.value + 1)
            if call.start < total:  # its first operation may be in an image from here on
                begun = call.start + 1
                ceiling_at[begun] = max(ceiling_at[begun], call.value + 1)
    for index in range(1, total + 1):
        out_at[index] = max(out_at[index], out_at[index - 1])
        in_at[index] = max(in_at[index], in_at[index - 1])
        ceiling_at[index] = max(ceiling_at[index], ceiling_at[index - 1])
    return out_at, in_at, ceiling_at


def _cut_text(ops: list[Op], calls: list[_Call], cut: int, how: str) -> str:
    if cut == 0:
        where = "before the first file operation"
    else:
        where = f"after operation {cut} ({ops[cut - 1].call})"
    done = [call for call in calls if call.end <= cut and call.kind in ("next_out", "observed_in")]
    running = [call for call in calls if call.start < cut < call.end]
    step = f", {len(done)} calls acknowledged (the last: {done[-1].text})" if done else ""
    during = f", during {running[0].text}" if running else ""
    return f"a power cut {where}{during}{step}, {how}"


def run_power_cut(
    open_store: Callable[[str], Handle],
    label: str,
    *,
    steps: int,
    max_states: int,
    seed: int,
    directory: str | None,
) -> None:
    """Record a drive of the store, then open and check every crash image.

    Args:
        open_store: Opens (or creates) the store in a directory, as a handle.
        label: The check group's name, for messages.
        steps: next_out()/observed_in() calls in the drive.
        max_states: Distinct crash images opened at most.
        seed: Seeds the drive's mix of calls.
        directory: Where to work (a new temporary directory if None).

    Raises:
        Violation: A crash image reopened in a state that breaks the contract.
        PowerCutSkip: The kit cannot see (or model) the store's I/O.
    """
    base = tempfile.mkdtemp(prefix="fixseq-power-cut-", dir=directory)
    try:
        _run(open_store, label, steps, max_states, seed, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(
    open_store: Callable[[str], Handle],
    label: str,
    steps: int,
    max_states: int,
    seed: int,
    base: str,
) -> None:
    store_dir = os.path.join(base, "store")
    os.mkdir(store_dir, 0o700)
    recorder = Recorder(store_dir)
    calls: list[_Call] = []
    name = "the store"
    chance = random.Random(seed)
    next_out, next_in, highest = 1, 1, 0
    recorder.install()
    try:
        h = _timed(calls, recorder, "make_store(directory)", "open", lambda: open_store(store_dir))
        name = h.name
        for step in range(steps):
            if step == steps // 2:
                _timed(calls, recorder, "close() half way", "close", h.close)
                h = _timed(
                    calls,
                    recorder,
                    "make_store(directory) half way",
                    "open",
                    lambda: open_store(store_dir),
                )
                got = (h.peek_out(), h.current_in())
                if got != (next_out, next_in):
                    raise fail(
                        label,
                        h.name,
                        f"after a clean close and make_store() on the same directory half way, "
                        f"the store is at peek_out()={describe(got[0])}, "
                        f"current_in()={describe(got[1])}, not the acknowledged "
                        f"{next_out}, {next_in}",
                    )
            if chance.random() < 0.55:
                number = _timed(
                    calls, recorder, f"next_out() returned {next_out}", "next_out", h.next_out
                )
                if number != next_out:
                    raise fail(
                        label,
                        h.name,
                        f"next_out() returned {describe(number)}, expected {next_out}",
                    )
                calls[-1].value = number
                next_out += 1
            else:
                if highest and chance.random() < 0.2:
                    seq_num = chance.randint(1, highest)
                else:
                    seq_num = highest + chance.randint(1, 3)
                highest = max(highest, seq_num)
                observe = functools.partial(h.observed_in, seq_num)
                _timed(calls, recorder, f"observed_in({seq_num})", "observed_in", observe)
                calls[-1].value = seq_num
                next_in = max(next_in, seq_num + 1)
        _timed(calls, recorder, "close() at the end", "close", h.close)
    finally:
        recorder.uninstall()
    _require_modelled(recorder, store_dir)
    _check_images(
        open_store, label, name, recorder.ops, calls, base, (next_out, next_in), max_states
    )


def _timed(
    calls: list[_Call], recorder: Recorder, text: str, kind: str, action: Callable[[], T]
) -> T:
    start = len(recorder.ops)
    result = action()
    calls.append(_Call(start, len(recorder.ops), text, kind))
    return result


def _require_modelled(recorder: Recorder, store_dir: str) -> None:
    if recorder.unmodelled:
        raise PowerCutSkip(
            f"the kit cannot model the store's file operations: {recorder.unmodelled[0]}"
        )
    modelled = recorder.modelled_files()
    real: dict[str, bytes] = {}
    for entry in sorted(os.listdir(store_dir)):
        path = os.path.join(store_dir, entry)
        if os.path.islink(path) or not os.path.isfile(path):
            raise PowerCutSkip(
                f"the store made {entry} in its directory, which is not a regular file"
            )
        with open(path, "rb") as file:
            real[entry] = file.read()
    if not recorder.ops and not real:
        raise PowerCutSkip(
            "the store wrote no file in its directory that the kit could see "
            "(its data lives elsewhere: a server, a database; a power cut there is not "
            "the kit's to simulate)"
        )
    for entry in sorted(set(real) | set(modelled)):
        if entry not in modelled:
            raise PowerCutSkip(
                f"{entry} is in the store's directory, but the kit saw no operation make it: "
                "the store writes through I/O the kit cannot see (a C library such as "
                "sqlite3, mmap, or os functions bound before the run)"
            )
        if entry not in real:
            raise PowerCutSkip(f"the kit modelled {entry}, but it is not in the store's directory")
        if real[entry] != modelled[entry]:
            raise PowerCutSkip(
                f"{entry} differs from what the kit modelled from the operations it saw: "
                "the store writes through I/O the kit cannot see (a C library such as "
                "sqlite3, mmap, or os functions bound before the run)"
            )


def _collect(ops: list[Op], calls: list[_Call], max_states: int) -> list[_Image]:
    out_at, in_at, ceiling_at = _floors(calls, len(ops))
    disk = _Disk()
    images: dict[bytes, _Image] = {}
    limit = max_states * _CANDIDATE_FACTOR
    for cut in range(len(ops) + 1):
        if cut:
            disk.apply(ops[cut - 1])
        for how, files in disk.images():
            key = _key(files)
            image = images.get(key)
            if image is None:
                if len(images) >= limit:
                    continue
                image = images[key] = _Image(files, cut)
            if out_at[cut] > image.out_floor:
                image.out_floor, image.out_cut = out_at[cut], _cut_text(ops, calls, cut, how)
            if in_at[cut] > image.in_floor:
                image.in_floor, image.in_floor_cut = in_at[cut], _cut_text(ops, calls, cut, how)
            if ceiling_at[cut] < image.in_ceiling:
                image.in_ceiling, image.in_ceiling_cut = (
                    ceiling_at[cut],
                    _cut_text(ops, calls, cut, how),
                )
    chosen = list(images.values())
    if len(chosen) > max_states:
        step = len(chosen) / max_states
        chosen = [chosen[int(k * step)] for k in range(max_states)]
    return chosen


def _open_image(
    open_store: Callable[[str], Handle], files: dict[str, bytes], where: str
) -> tuple[int, int] | None:
    os.mkdir(where, 0o700)
    try:
        for entry, data in files.items():
            fd = os.open(os.path.join(where, entry), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        try:
            h = open_store(where)
        except Violation:
            raise
        except Exception:
            return None  # refused to open: accepted
        try:
            try:
                got = h.call("peek_out"), h.call("current_in")
            except Violation:
                raise
            except Exception:
                return None
            for value, call in zip(got, ("peek_out()", "current_in()"), strict=True):
                if type(value) is not int:
                    raise fail("power_cut", h.name, f"{call} returned {value!r}, not an int")
            return got[0], got[1]
        finally:
            h.close()
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _check_images(
    open_store: Callable[[str], Handle],
    label: str,
    name: str,
    ops: list[Op],
    calls: list[_Call],
    base: str,
    final: tuple[int, int],
    max_states: int,
) -> None:
    images_dir = os.path.join(base, "images")
    os.mkdir(images_dir, 0o700)
    # The directory as the run left it (every change synced by the closing
    # close(), for a correct store) must open at exactly the final state.
    clean = _open_image(open_store, files_after(ops), os.path.join(images_dir, "final"))
    if clean != final:
        shown = "refused to open" if clean is None else f"opened at {clean}"
        raise fail(
            label,
            name,
            f"the store's files as the run left them (after a clean close) {shown}, not at "
            f"the acknowledged peek_out()={final[0]}, current_in()={final[1]}",
        )
    problems: list[str] = []
    images = _collect(ops, calls, max_states)
    for index, image in enumerate(images):
        got = _open_image(open_store, image.files, os.path.join(images_dir, str(index)))
        if got is None:
            continue
        next_out, next_in = got
        state = f"reopened at peek_out()={describe(next_out)}, current_in()={describe(next_in)}"
        if next_out <= image.out_floor:
            what = (
                "it silently started again at 1"
                if next_out == 1
                else f"next_out() would hand out {describe(next_out)} again"
            )
            problems.append(
                f"{image.out_cut}: {state}; {what} ({image.out_floor} had been acknowledged)"
            )
        elif next_in < image.in_floor:
            what = "silently started again at 1" if next_in == 1 else "went down"
            problems.append(
                f"{image.in_floor_cut}: {state}; the inbound mark {what} "
                f"(observed_in({image.in_floor - 1}) had been acknowledged)"
            )
        elif next_in > image.in_ceiling:
            problems.append(
                f"{image.in_ceiling_cut}: {state}; the inbound mark is ahead of every "
                f"observed_in() begun before the cut (the highest: {image.in_ceiling - 1})"
            )
    if problems:
        more = len(problems) - _MAX_REPORTED
        raise fail(
            label,
            name,
            f"{len(problems)} of {len(images)} simulated power cuts broke the contract: "
            + "; ".join(problems[:_MAX_REPORTED])
            + (f"; and {more} more" if more > 0 else "")
            + " (a store must sync each change, and the directory after creating or "
            "renaming a file, before it acknowledges the change)",
        )
