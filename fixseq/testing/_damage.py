"""The damage group: a bad disk under a closed store's files.

The kit drives a fresh store to a known acknowledged state, closes it once,
and then, for each damage to one of its files (every byte XOR-ed with 0x01 and
with 0xFF, every truncation length, the file emptied; a deterministic sample of
them for a file over 4 KiB), hands the closed store to ``reopen``. The store
that comes back must reuse no acknowledged outbound number (it may skip a
few) and its inbound mark must not be ahead of the acknowledged one (it may
lag by one change). Refusing to open (any exception) is always accepted: an
operator then decides, which beats a session that silently starts again at 1
or resends numbers the peer already has.

The files are restored byte for byte after each damage, so every damage is
tried on its own against the same acknowledged state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._handles import Handle, Violation, describe, fail

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._checks import Subject

__all__ = [
    "DAMAGE_ROUNDS",
    "FULL_DAMAGE_LIMIT",
    "Damage",
    "check_damage",
    "damages",
    "quiet_store_loggers",
]

FULL_DAMAGE_LIMIT = 4096
"""Files up to this size get every damage; larger ones a deterministic sample."""

DAMAGE_ROUNDS = 20
"""next_out() + observed_in() pairs that make the acknowledged state damaged."""

_MAX_REPORTED = 3  # violations quoted in the message; the rest are counted
_SEED = 0x5EC  # the sample of a large file is the same on every run


# The loggers under which fixseq's stores report damage they survive.
_STORE_LOGGERS = "fixseq"


@contextlib.contextmanager
def quiet_store_loggers() -> Iterator[None]:
    """Silence fixseq's store loggers while the kit damages files on purpose; restore after.

    A file store warns once per damaged slot it reads past, which is right for a
    real disk and a flood for hundreds of damages made on purpose (outside
    pytest, Python's last-resort handler prints each to stderr). Every logger
    under ``fixseq`` is disabled meanwhile (its level and handlers are left
    as they were), and each one's ``disabled`` flag is put back after.
    """
    manager = logging.Logger.manager
    names = [_STORE_LOGGERS] + [
        name for name in list(manager.loggerDict) if name.startswith(_STORE_LOGGERS + ".")
    ]
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, saved, strict=True):
            logger.disabled = disabled


@dataclass(frozen=True)
class Damage:
    """One way to damage one file: flip a byte, or cut the file short."""

    offset: int
    """The byte flipped, or the length the file is cut to."""
    xor: int
    """The mask XOR-ed into the byte; 0 for a truncation."""

    def apply(self, data: bytes) -> bytes:
        """Return ``data`` with this damage done to it."""
        if not self.xor:
            return data[: self.offset]
        damaged = bytearray(data)
        damaged[self.offset] ^= self.xor
        return bytes(damaged)

    def describe(self, size: int) -> str:
        """Say what this damage did, for a message."""
        if not self.xor:
            if self.offset == 0:
                return f"emptied (all {size} bytes cut)"
            return f"truncated to {self.offset} of {size} bytes"
        return f"byte {self.offset} of {size} XOR 0x{self.xor:02X}"


def damages(data: bytes, sample: int) -> Iterator[Damage]:
    """Every damage the kit does to a file holding ``data``.

    Up to :data:`FULL_DAMAGE_LIMIT` bytes: every byte flipped both ways, every
    truncation length (0, the file emptied, first). A larger file: ``sample``
    byte positions, each flipped both ways, and ``sample`` truncation lengths.
    The positions favour the file's content: every byte of each 16-byte block
    that holds anything but zeros comes first (a number's zero high bytes sit
    next to its low ones), then positions drawn at random with a fixed seed.
    The lengths are 0, 1, the size less one, every 512-byte sector boundary,
    the edges of those blocks, then random ones.
    """
    size = len(data)
    yield Damage(0, 0)
    if size <= FULL_DAMAGE_LIMIT:
        positions: list[int] = list(range(size))
        lengths: list[int] = list(range(1, size))
    else:
        chance = random.Random(_SEED ^ size)
        busy = [start for start in range(0, size, 16) if any(data[start : start + 16])]
        chosen: dict[int, None] = {}
        for start in busy:
            for offset in range(start, min(start + 16, size)):
                chosen.setdefault(offset)
        rest = [offset for offset in range(size) if offset not in chosen]
        chance.shuffle(rest)
        positions = sorted([*chosen, *rest][:sample])
        edges: dict[int, None] = dict.fromkeys([1, size - 1])
        edges.update(dict.fromkeys(range(512, size, 512)))
        for start in busy:
            edges.update(dict.fromkeys([start, start + 8, min(start + 16, size - 1)]))
        others = [length for length in range(2, size - 1) if length not in edges]
        chance.shuffle(others)
        firsts = [length for length in edges if 0 < length < size]
        lengths = sorted([*firsts, *others][:sample])
    for offset in positions:
        yield Damage(offset, 0x01)
        yield Damage(offset, 0xFF)
    for length in lengths:
        yield Damage(length, 0)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        return None


def _damage(path: str, damage: Damage, data: bytes) -> None:
    """Do one damage in place: no rewrite of the whole file (a truncating open is slow)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if damage.xor:
            os.pwrite(fd, bytes([data[damage.offset] ^ damage.xor]), damage.offset)
        else:
            os.ftruncate(fd, damage.offset)
    finally:
        os.close(fd)


def _restore(path: str, original: bytes) -> None:
    """Put the file back as it was (the store's reopen may have rewritten it too)."""
    if _read(path) == original:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, original, 0)
        os.ftruncate(fd, len(original))
    finally:
        os.close(fd)


def check_damage(subject: Subject) -> str | None:
    """Damage each backing file of a closed store, reopen, require no reuse and no mark ahead."""
    if subject.files is None:
        return "no files= was given (only stores with backing files can be damaged)"
    if not subject.can_reopen:
        return "files= needs reopen= as well: the damaged files are opened through reopen"
    h = subject.fresh("damage")
    # The acknowledged state, and the state one change before it (the inbound
    # mark may lag by one change: a store that lost its newest record to the
    # damage may fall back to the one before, which is not a reuse).
    for seq_num in range(1, DAMAGE_ROUNDS + 1):
        h.next_out()
        h.observed_in(seq_num)
    want_out, want_in = DAMAGE_ROUNDS + 1, DAMAGE_ROUNDS + 1
    lag_in = DAMAGE_ROUNDS
    h.state()
    paths = _paths(h, subject)
    h.close()
    originals = {path: _read(path) or b"" for path in paths}
    _baseline(h, want_out, want_in)
    problems: list[str] = []
    tried = 0
    for path, data in originals.items():
        name = os.path.basename(path)
        for damage in damages(data, subject.damage_sample):
            tried += 1
            _damage(path, damage, data)
            try:
                with quiet_store_loggers():
                    got = _reopened_state(h)
            finally:
                for original_path, original in originals.items():
                    _restore(original_path, original)
            if got is None:
                continue  # refused to open the damaged file: accepted
            next_out, next_in = got
            what = _judge(next_out, next_in, want_out, want_in, lag_in)
            if what:
                problems.append(
                    f"{name} {damage.describe(len(data))}: reopened at peek_out()="
                    f"{describe(next_out)}, current_in()={describe(next_in)}; {what}"
                )
    if problems:
        more = len(problems) - _MAX_REPORTED
        raise fail(
            h.label,
            h.name,
            f"after {DAMAGE_ROUNDS} next_out() and observed_in() pairs (acknowledged: "
            f"peek_out()={want_out}, current_in()={want_in}) and a close, "
            f"{len(problems)} of {tried} damaged files reopened in a wrong state: "
            + "; ".join(problems[:_MAX_REPORTED])
            + (f"; and {more} more" if more > 0 else "")
            + " (a damaged store must raise, or come back with no acknowledged outbound "
            "number reused and an inbound mark not ahead)",
        )
    return None


def _judge(next_out: int, next_in: int, want_out: int, want_in: int, lag_in: int) -> str:
    problems = []
    if next_out < want_out:
        if next_out == 1:
            problems.append("it silently started again at 1")
        else:
            problems.append(
                f"next_out() would hand out {describe(next_out)} again "
                f"(numbers up to {want_out - 1} were acknowledged)"
            )
    if next_in > want_in:
        problems.append(
            f"the inbound mark is ahead of the acknowledged {want_in}: a message would be lost"
        )
    elif next_in < lag_in:
        if next_in == 1:
            problems.append("the inbound mark silently started again at 1")
        else:
            problems.append(f"the inbound mark fell below {lag_in}, more than one change behind")
    return "; ".join(problems)


def _paths(h: Handle, subject: Subject) -> list[str]:
    assert subject.files is not None
    try:
        named = subject.files(h.store)
    except Exception as exc:
        raise fail(h.label, h.name, f"files() raised {type(exc).__name__}: {exc}") from exc
    try:
        paths = [os.fspath(path) for path in named]
    except TypeError as exc:
        raise fail(
            h.label, h.name, f"files() returned {named!r}, not a list of paths: {exc}"
        ) from exc
    if not paths:
        raise fail(h.label, h.name, "files() named no file: there is nothing to damage")
    text_paths = [path if isinstance(path, str) else os.fsdecode(path) for path in paths]
    missing = [path for path in text_paths if not os.path.isfile(path)]
    if missing:
        raise fail(
            h.label,
            h.name,
            f"files() named {missing[0]}, which is not a file after close()",
        )
    return list(dict.fromkeys(text_paths))


def _reopened_state(h: Handle) -> tuple[int, int] | None:
    """Reopen the closed store; its (peek_out, current_in), or None if it refused."""
    try:
        reopened = h._reopen_handle()
    except Violation:
        raise
    except Exception:
        return None
    try:
        # A store may also refuse at the first read (a lazy open): accepted too.
        try:
            next_out, next_in = reopened.call("peek_out"), reopened.call("current_in")
        except Violation:
            raise
        except Exception:
            return None
        for value, call in ((next_out, "peek_out()"), (next_in, "current_in()")):
            if type(value) is not int:
                raise fail(h.label, h.name, f"{call} returned {value!r}, not an int")
        return next_out, next_in
    finally:
        reopened.close()


def _baseline(h: Handle, want_out: int, want_in: int) -> None:
    got = _reopened_state(h)
    if got != (want_out, want_in):
        shown = "raised" if got is None else f"came back at {got}"
        raise fail(
            h.label,
            h.name,
            f"reopening the undamaged files {shown}, not at the acknowledged "
            f"({want_out}, {want_in}): the damage check needs a clean reopen to start from",
        )
