"""The file store's format, version 1: encoding, decoding and the reading rule.

Every integer is little-endian; the file is exactly
12,288 bytes, three 4 KiB pages, and never changes size after creation::

    page 0, the header (written once, at creation)
      offset  size  field
      0       8     magic b"\\x89FIXSEQ\\n" (the high bit and the newline catch
                    text-mode copies, as PNG's magic does)
      8       2     format version, u16 = 1
      10      2     flags, u16 = 0 (reserved)
      12      4     page size, u32 = 4096
      16      2     N, length of the session name in UTF-8 bytes, u16
                    (0: no name; at most 1024)
      18      N     session name, UTF-8
      18+N    4     header CRC: zlib.crc32 of bytes [0, 18+N)
      22+N    ...   zero up to offset 4096 (reserved: written as zero, not read)

    page 1 (offset 4096): slot 0, even generations
    page 2 (offset 8192): slot 1, odd generations
      offset  size  field
      0       8     generation, u64: one more than the newest slot's before
      8       8     last_out = next_out - 1, u64 in 0..2**63-1
      16      8     last_in  = next_in - 1,  u64 in 0..2**63-1
      24      8     creation time, i64 microseconds since 1970-01-01T00:00Z
      32      8     out_limit, u64 in last_out..2**63-1: the largest last_out
                    the next write may store
      40      4     slot CRC: zlib.crc32 of bytes [0, 40), seeded with the
                    header CRC (a slot spliced in from another file fails)
      44      ...   zero up to the end of the page (reserved: written as zero,
                    not read, so damage there costs nothing)

Each durable write is one ``os.pwrite`` of a 44-byte slot over the older
slot, then ``os.fdatasync`` (``F_FULLFSYNC`` on macOS): no rename, no
truncate, no size change, so the sync has no metadata to flush. Each slot has
a page of its own, so a device that garbles the sector it was writing at a
power cut (512-byte logical sectors share a 4 KiB physical one) cannot take the
other slot with it. One write may cover several changes (the core's group
commit, an outbound reservation). A write is made once if its last_out is at
most the newest slot's out_limit, its last_in at least that slot's and its
creation time the same; any other write (a reset, ``set_next_in``
downwards, an advance past the limit) is made twice, into both slots, before
anyone is acknowledged. out_limit is last_out plus a headroom: one for a lone
sender; for groups of concurrent callers twice the latest group (at most 256),
decaying by an eighth a write when they stop; the whole block with a
reservation. So the common write is made once (see plan_write).

Reading rule. The size, the magic, the version, the flags, the page size
and the header CRC must all hold, or the file is corrupt. A slot is valid
when its CRC matches, its generation has its page's parity and
``last_out <= out_limit <= MAX_SEQ_NUM`` and ``last_in <= MAX_SEQ_NUM``.

* Both valid: their generations must differ by exactly one (no sequence of
  writes makes anything else); the newer slot is the state, exactly.
* One valid: the other was either being written when the power went (a torn,
  unacknowledged write) or was written, acknowledged and later damaged; the
  two look alike. Falling back to the survivor's last_out would hand out again
  the numbers the lost slot covered, so outbound resumes at the survivor's
  out_limit + 1, past anything the lost write can have stored (with the usual
  headroom of one: one past the survivor's next_out). A skipped number is
  repaired by a SequenceReset-GapFill; a reused one is not. The inbound mark
  and the creation time are the survivor's: at most one write behind (a
  PossDup resend), never ahead, because a write that lowers the inbound mark
  is in both slots before it is acknowledged.
* Neither valid: :class:`~fixseq.CorruptStoreError`. Never a silent 1.

CRC32 (zlib) rather than CRC32C: it is in the standard library and in C,
and for a 40-byte record both detect every burst of up to 32 bits and every
error of up to three bits; CRC32C's edge is hardware speed on long buffers,
which a 44-byte slot does not need, and it would cost a dependency.

This module does no I/O: :mod:`fixseq._file` reads and writes the bytes.
"""

from __future__ import annotations

import datetime
import struct
import zlib
from typing import NamedTuple

from ._protocols import MAX_SEQ_NUM
from .errors import CorruptStoreError, repair_steps

__all__ = [
    "FILE_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_GROUP_HEADROOM",
    "MAX_SESSION_BYTES",
    "PAGE_SIZE",
    "SLOT_OFFSET",
    "SLOT_SIZE",
    "Parsed",
    "Slot",
    "encode_header",
    "encode_slot",
    "micros",
    "new_image",
    "parse",
    "plan_write",
    "read_slot",
]

MAGIC = b"\x89FIXSEQ\n"
FORMAT_VERSION = 1
PAGE_SIZE = 4096
FILE_SIZE = 3 * PAGE_SIZE
MAX_SESSION_BYTES = 1024

_HEAD = struct.Struct("<8sHHIH")  # magic, version, flags, page size, name length
_BODY = struct.Struct("<QQQqQ")  # generation, last_out, last_in, created (µs), out_limit
_CRC = struct.Struct("<I")
SLOT_SIZE = _BODY.size + _CRC.size
SLOT_OFFSET = (PAGE_SIZE, 2 * PAGE_SIZE)
# out_limit makes room for the next write to advance as far as the groups of
# concurrent callers lately did (group sizes vary from write to write), but
# only up to this: a bigger advance is an explicit set_next_out, not a pattern,
# and room for it would only widen the gap a damaged slot costs.
MAX_GROUP_HEADROOM = 256
pack_body = _BODY.pack
pack_crc = _CRC.pack
crc32 = zlib.crc32

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_MICROSECOND = datetime.timedelta(microseconds=1)


def micros(created: datetime.datetime) -> int:
    """A creation time as whole microseconds since the epoch (the slot's i64)."""
    return (created - _EPOCH) // _ONE_MICROSECOND


def encode_header(session: bytes) -> bytes:
    """The header's bytes up to and including its CRC (the page is zero after it)."""
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, PAGE_SIZE, len(session)) + session
    return head + _CRC.pack(zlib.crc32(head))


def encode_slot(
    seed: int, generation: int, next_out: int, next_in: int, created_us: int, out_limit: int
) -> bytes:
    """One slot's 44 bytes (the store's hot path inlines this)."""
    body = _BODY.pack(generation, next_out - 1, next_in - 1, created_us, out_limit)
    return body + _CRC.pack(zlib.crc32(body, seed))


def new_image(session: bytes, created: datetime.datetime) -> bytes:
    """A whole new file: the header and both slots holding 1 and 1."""
    header = encode_header(session)
    seed = zlib.crc32(header[:-4])
    created_us = micros(created)
    slots = [encode_slot(seed, generation, 1, 1, created_us, 1) for generation in (0, 1)]
    pages = [header, *slots]
    return b"".join(page.ljust(PAGE_SIZE, b"\0") for page in pages)


class Slot(NamedTuple):
    """One valid slot, decoded (counters as next values, not last ones)."""

    generation: int
    next_out: int
    next_in: int
    created: datetime.datetime
    out_limit: int


class Parsed(NamedTuple):
    """A whole file, decoded: the state to resume from and how it was found."""

    session: str | None
    seed: int
    newest: Slot  # the slot the state was read from, as written
    next_out: int
    next_in: int
    created: datetime.datetime
    damaged: int | None  # index of the damaged slot, if one is


def read_slot(image: bytes, index: int, seed: int) -> Slot | None:
    """Decode slot ``index`` of a whole-file image, or None if it is not valid."""
    offset = SLOT_OFFSET[index]
    generation, last_out, last_in, created_us, out_limit = _BODY.unpack_from(image, offset)
    (crc,) = _CRC.unpack_from(image, offset + _BODY.size)
    if crc != zlib.crc32(memoryview(image)[offset : offset + _BODY.size], seed):
        return None
    if generation % 2 != index or not last_out <= out_limit <= MAX_SEQ_NUM:
        return None
    if last_in > MAX_SEQ_NUM:
        return None
    try:
        created = _EPOCH + created_us * _ONE_MICROSECOND
    except OverflowError:
        return None
    return Slot(generation, last_out + 1, last_in + 1, created, out_limit)


def plan_write(
    written: tuple[int, int, datetime.datetime, int],
    last_out: int,
    next_in: int,
    created: datetime.datetime,
    reserve: int,
) -> tuple[int, bool]:
    """The writing rule: the new slot's out_limit, and whether to write it to both slots.

    ``written`` is the newest slot as written: (last_out, next_in, created,
    out_limit). Creation times compare by identity: the store passes the same
    object until a reset makes a new one.
    """
    w_out, w_in, w_created, w_limit = written
    advance = last_out - w_out
    # (Comparisons, not min()/max(): this runs on every write, next to a ~1 µs pwrite.)
    if created is not w_created or advance < 0 or advance > MAX_GROUP_HEADROOM:
        # An explicit set_next_out or a reset: no pattern to make room for.
        headroom = reserve
    else:
        # Room for the next group: twice this one (group sizes vary from write
        # to write), or the headroom the newest slot left, decaying by an eighth
        # a write so that a lone sender (advance 1) is soon back at "one past"
        # (see MAX_GROUP_HEADROOM). A reserved block always fits, and the
        # headroom is never below one (reserve >= 1).
        headroom = (w_limit - w_out) * 7 // 8
        if advance > 1:
            group = 2 * advance if advance <= MAX_GROUP_HEADROOM // 2 else MAX_GROUP_HEADROOM
            if group > headroom:
                headroom = group
        if headroom < reserve:
            headroom = reserve
    out_limit = last_out + headroom
    if out_limit > MAX_SEQ_NUM:
        out_limit = MAX_SEQ_NUM
    # Past the newest slot's limit, lowering the inbound mark, or a reset: the
    # new state goes into both slots, so a slot damaged later can never bring
    # back a state that reuses a number or has an inbound mark ahead of it.
    return out_limit, (last_out > w_limit or next_in < w_in or created is not w_created)


def parse(image: bytes, path: str) -> Parsed:
    """Decode a whole file by the reading rule in the module docstring.

    Raises:
        CorruptStoreError: The file holds no valid state; the message ends with the
            repair that works (see `repair_steps`).
    """
    try:
        return _parse(image, path)
    except CorruptStoreError as exc:
        raise CorruptStoreError(f"{exc}; {repair_steps(path, 'file')}") from exc.__cause__


def _parse(image: bytes, path: str) -> Parsed:
    if not image:
        raise CorruptStoreError(
            f"{path} is empty: it holds no state, and fixseq never starts a session "
            "again at 1 on its own"
        )
    if len(image) != FILE_SIZE:
        raise CorruptStoreError(
            f"{path} is {len(image)} bytes long, not {FILE_SIZE}: truncated or not a fixseq file"
        )
    magic, version, flags, page_size, name_len = _HEAD.unpack_from(image)
    if magic != MAGIC:
        raise CorruptStoreError(f"{path} is not a fixseq file store (bad magic {magic!r})")
    if version != FORMAT_VERSION:
        raise CorruptStoreError(
            f"{path} has format version {version}; this fixseq reads version {FORMAT_VERSION}"
        )
    end = _HEAD.size + name_len
    if name_len > MAX_SESSION_BYTES:
        raise CorruptStoreError(f"{path}: header damaged (session name length {name_len})")
    (crc,) = _CRC.unpack_from(image, end)
    seed = zlib.crc32(memoryview(image)[:end])
    if crc != seed or flags != 0 or page_size != PAGE_SIZE:
        raise CorruptStoreError(f"{path}: header damaged (CRC, flags or page size)")
    try:
        session = image[_HEAD.size : end].decode("utf-8") if name_len else None
    except UnicodeDecodeError as exc:
        raise CorruptStoreError(f"{path}: header damaged (session name)") from exc
    slots = (read_slot(image, 0, seed), read_slot(image, 1, seed))
    first, second = slots
    if first is not None and second is not None:
        if abs(first.generation - second.generation) != 1:
            raise CorruptStoreError(
                f"{path}: slots hold generations {first.generation} and {second.generation}, "
                "which no sequence of writes produces"
            )
        newest = max(first, second)  # by generation, the first field
        return Parsed(session, seed, newest, newest.next_out, newest.next_in, newest.created, None)
    if first is None and second is None:
        raise CorruptStoreError(f"{path}: both state slots are damaged; no valid state remains")
    survivor = first if first is not None else second
    assert survivor is not None
    damaged = 1 if first is not None else 0
    # The lost slot may have been the newest; it stored at most out_limit.
    return Parsed(
        session,
        seed,
        survivor,
        survivor.out_limit + 1,
        survivor.next_in,
        survivor.created,
        damaged,
    )
