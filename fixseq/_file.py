"""The durable file store: one small file per FIX session, crash-safe.

Format, version 1. Every integer is little-endian; the file is exactly
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
      22+N    ...   zero up to offset 4096

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
      44      ...   zero up to the end of the page

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
anyone is acknowledged. out_limit is last_out plus a headroom of at least one
(more when writes advance by more: groups, reservations), so the common write
is made once.

Reading rule. The size, the magic, the version, the page size, the header
CRC and the header's zero padding must all hold, or the file is corrupt. A
slot is valid when its CRC matches, its generation has its page's parity, both
counters are at most ``MAX_SEQ_NUM`` and its padding is zero.

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
and for a 32-byte record both detect every burst of up to 32 bits and every
error of up to three bits; CRC32C's edge is hardware speed on long buffers,
which a 36-byte slot does not need, and it would cost a dependency.

Every OS call goes through a small private function that looks its ``os``
function up at call time, so a test can fail any one of them by monkeypatching
``os`` (python-atomicwrites' habit).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import functools
import logging
import os
import secrets
import stat
import struct
import sys
import threading
import warnings
import zlib
from typing import TYPE_CHECKING, NamedTuple

import anyio

from ._core import SeqCounters, utc_now
from ._protocols import MAX_SEQ_NUM, SeqState
from ._twins import AsyncAdminShell, offload
from .errors import CorruptStoreError, SeqStoreError, StoreIOError, StoreLockedError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["AsyncFileSeqStore", "FileSeqStore", "FileState", "read_file_state"]

_log = logging.getLogger("fixseq.file")

MAGIC = b"\x89FIXSEQ\n"
FORMAT_VERSION = 1
PAGE_SIZE = 4096
FILE_SIZE = 3 * PAGE_SIZE
MAX_SESSION_BYTES = 1024

_HEAD = struct.Struct("<8sHHIH")  # magic, version, flags, page size, name length
_BODY = struct.Struct("<QQQqQ")  # generation, last_out, last_in, created (µs), out_limit
_CRC = struct.Struct("<I")
SLOT_SIZE = _BODY.size + _CRC.size
_SLOT_OFFSET = (PAGE_SIZE, 2 * PAGE_SIZE)
# Headroom in out_limit beyond the last write's own advance, at most this much,
# so that a damaged slot costs a bounded gap (an explicit set_next_out far
# ahead is one big advance, not a pattern to make room for).
_MAX_HEADROOM = 4096
_pack_body = _BODY.pack
_pack_crc = _CRC.pack
_crc32 = zlib.crc32

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_MICROSECOND = datetime.timedelta(microseconds=1)

# Stores open in this process, by (st_dev, st_ino): a second opener is refused
# even where flock() is per process rather than per open file (NFS emulates it
# with fcntl locks).
_open_files: set[tuple[int, int]] = set()
_open_files_lock = threading.Lock()


# -- the OS calls, one small function each (looked up on ``os`` at call time) --


def _open(path: str, flags: int, mode: int = 0o600) -> int:
    return os.open(path, flags | os.O_CLOEXEC, mode)


def _close(fd: int) -> None:
    os.close(fd)


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``, however many calls it takes."""
    written = os.pwrite(fd, data, offset)
    while written < len(data):
        if written <= 0:
            raise OSError(errno.EIO, "pwrite wrote nothing")
        data, offset = data[written:], offset + written
        written = os.pwrite(fd, data, offset)


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Read ``size`` bytes at ``offset``, or fewer only at the end of the file."""
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


if sys.platform == "darwin":  # pragma: no cover - not the CI platform

    def _sync_file(fd: int) -> None:
        # macOS fsync() leaves the data in the drive's cache; only F_FULLFSYNC
        # asks the drive to write it to the medium.
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)

else:

    def _sync_file(fd: int) -> None:
        os.fdatasync(fd)


def _sync_dir(directory: str) -> None:
    """Make a directory's entries (a new link, a removed name) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot sync a directory at all; nothing to do there.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _link(source: str, target: str) -> None:
    os.link(source, target)


def _rename(source: str, target: str) -> None:
    os.rename(source, target)


def _unlink(path: str) -> None:
    os.unlink(path)


def _fchmod(fd: int, mode: int) -> None:
    os.fchmod(fd, mode)


def _lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


# -- encoding and decoding ------------------------------------------------------


def _micros(created: datetime.datetime) -> int:
    return (created - _EPOCH) // _ONE_MICROSECOND


def _header(session: bytes) -> bytes:
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, PAGE_SIZE, len(session)) + session
    return head + _CRC.pack(zlib.crc32(head))


def _slot(
    seed: int, generation: int, next_out: int, next_in: int, created_us: int, out_limit: int
) -> bytes:
    body = _BODY.pack(generation, next_out - 1, next_in - 1, created_us, out_limit)
    return body + _CRC.pack(zlib.crc32(body, seed))


def _new_image(session: bytes, created: datetime.datetime) -> bytes:
    """A whole new file: the header and both slots holding 1 and 1."""
    header = _header(session)
    seed = zlib.crc32(header[:-4])
    created_us = _micros(created)
    pages = [header, _slot(seed, 0, 1, 1, created_us, 1), _slot(seed, 1, 1, 1, created_us, 1)]
    return b"".join(page.ljust(PAGE_SIZE, b"\0") for page in pages)


class _Slot(NamedTuple):
    generation: int
    next_out: int
    next_in: int
    created: datetime.datetime
    out_limit: int


class _Parsed(NamedTuple):
    session: str | None
    seed: int
    newest: _Slot  # the slot the state was read from, as written
    next_out: int
    next_in: int
    created: datetime.datetime
    damaged: int | None  # index of the damaged slot, if one is


def _zero(image: bytes, start: int, stop: int) -> bool:
    return image.count(0, start, stop) == stop - start


def _read_slot(image: bytes, index: int, seed: int) -> _Slot | None:
    offset = _SLOT_OFFSET[index]
    generation, last_out, last_in, created_us, out_limit = _BODY.unpack_from(image, offset)
    (crc,) = _CRC.unpack_from(image, offset + _BODY.size)
    if crc != zlib.crc32(memoryview(image)[offset : offset + _BODY.size], seed):
        return None
    if generation % 2 != index or not last_out <= out_limit <= MAX_SEQ_NUM:
        return None
    if last_in > MAX_SEQ_NUM:
        return None
    if not _zero(image, offset + SLOT_SIZE, offset + PAGE_SIZE):
        return None
    try:
        created = _EPOCH + created_us * _ONE_MICROSECOND
    except OverflowError:
        return None
    return _Slot(generation, last_out + 1, last_in + 1, created, out_limit)


def _parse(image: bytes, path: str) -> _Parsed:
    """Decode a whole file by the reading rule in the module docstring.

    Raises:
        CorruptStoreError: The file holds no valid state.
    """
    if not image:
        raise CorruptStoreError(
            f"{path} is empty: it holds no state, and fixseq never starts a session "
            "again at 1 on its own (inspect it, then remove it or set the numbers)"
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
    if crc != seed or flags != 0 or page_size != PAGE_SIZE or not _zero(image, end + 4, PAGE_SIZE):
        raise CorruptStoreError(f"{path}: header damaged (CRC, flags or padding)")
    try:
        session = image[_HEAD.size : end].decode("utf-8") if name_len else None
    except UnicodeDecodeError as exc:
        raise CorruptStoreError(f"{path}: header damaged (session name)") from exc
    slots = (_read_slot(image, 0, seed), _read_slot(image, 1, seed))
    first, second = slots
    if first is not None and second is not None:
        if abs(first.generation - second.generation) != 1:
            raise CorruptStoreError(
                f"{path}: slots hold generations {first.generation} and {second.generation}, "
                "which no sequence of writes produces"
            )
        newest = max(first, second)  # by generation, the first field
        return _Parsed(session, seed, newest, newest.next_out, newest.next_in, newest.created, None)
    if first is None and second is None:
        raise CorruptStoreError(f"{path}: both state slots are damaged; no valid state remains")
    survivor = first if first is not None else second
    assert survivor is not None
    damaged = 1 if first is not None else 0
    # The lost slot may have been the newest; it stored at most out_limit.
    return _Parsed(
        session,
        seed,
        survivor,
        survivor.out_limit + 1,
        survivor.next_in,
        survivor.created,
        damaged,
    )


def _read_image(fd: int, path: str) -> bytes:
    try:
        return _pread(fd, FILE_SIZE + 1, 0)
    except OSError as exc:
        raise StoreIOError(exc.errno, f"could not read {path}: {exc.strerror}") from exc


def _check_path(path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike[str], not {type(path).__name__}")
    value = os.fspath(path)
    if not isinstance(value, str):
        raise TypeError(f"path must be a str or os.PathLike[str], not {type(value).__name__}")
    if not value:
        raise ValueError("path must not be empty")
    return value


def _check_session(session: object) -> bytes | None:
    if session is None:
        return None
    if not isinstance(session, str):
        raise TypeError(f"session must be a str or None, not {type(session).__name__}")
    try:
        encoded = session.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"session {session!r} is not valid Unicode text") from exc
    if not encoded or len(encoded) > MAX_SESSION_BYTES:
        raise ValueError(f"session must be 1..{MAX_SESSION_BYTES} UTF-8 bytes, got {len(encoded)}")
    return encoded


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


# -- creation -----------------------------------------------------------------


def _create(path: str, session: bytes) -> None:
    """Create the file atomically: all of it appears, durable, or none of it.

    A crash leaves at most a temporary ``.NAME.*.fixseq-tmp`` file that is
    never read (its random name never collides with a later attempt); remove
    it at will. If another process creates ``path`` first, theirs is kept.
    """
    directory, base = os.path.split(os.path.abspath(path))
    temp = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.fixseq-tmp")
    image = _new_image(session, utc_now())
    fd = _open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            _fchmod(fd, 0o600)  # the umask may have taken the owner's bits too
            _pwrite(fd, image, 0)
            _sync_file(fd)
        finally:
            _close(fd)
        try:
            _link(temp, path)  # atomic, and never replaces a file another opener made
        except FileExistsError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links on this file system: rename is atomic too but
            # replaces, so a creator racing within this window could replace
            # ours (documented).
            if os.path.lexists(path):
                return
            _rename(temp, path)
        _sync_dir(directory)
    except OSError as exc:
        raise StoreIOError(exc.errno, f"could not create {path}: {exc.strerror}") from exc
    finally:
        try:
            _unlink(temp)
        except OSError:
            pass  # already renamed, or left behind harmlessly


def _open_fd(path: str, create: bool, session: bytes | None) -> int:
    for _ in range(3):
        try:
            return _open(path, os.O_RDWR)
        except FileNotFoundError as exc:
            if not create:
                raise SeqStoreError(
                    f"no file store at {path} and create=False: a store known to exist is "
                    "missing, so fixseq refuses to start the session again at 1"
                ) from exc
        _create(path, session or b"")
    raise SeqStoreError(f"{path} was created but disappeared before it could be opened")


# -- the stores -------------------------------------------------------------------


class FileSeqStore(SeqCounters):
    """A session's counters in one small file, crash-safe and durable.

    Every change is one ``pwrite`` of a checksummed slot and, with
    ``fsync=True``, one ``fdatasync`` before the call returns, so a number is
    handed out only after its advance would survive a power cut (with
    ``fsync=False``: a killed process, not a power cut). The file holds two
    slots written alternately; a damaged or torn slot is detected and never
    makes the store reuse a number or start again at 1. An exclusive lock keeps
    a second opener out while this store is open, in this process or another.
    The file format is documented in ``docs/stores/file.md``.

    Args:
        path: The file of this session; created (atomically, mode 0600,
            holding 1 and 1) if it is missing and ``create`` is true.
        fsync: Sync each change to the device before acknowledging it. With
            ``False`` a change reaches the OS page cache only: it survives the
            process being killed, not a power cut or a kernel crash.
        create: Create a missing file. With ``False`` a missing file raises
            :class:`~fixseq.SeqStoreError`: an engine that knows its session
            existed must never take a lost file for a new session.
        session: A name for the session (a FIX SessionID, say), stored in the
            file when it is created; opening an existing file that holds a
            different name (or none) raises :class:`~fixseq.SeqStoreError`.
            ``None`` skips the check.
        reserve: Outbound numbers made durable per write (default 1: every
            number). With ``reserve=K`` one write covers the next K numbers;
            after a crash ``next_out`` resumes at the reserved mark, so up to K
            numbers are skipped (never reused): the peer's ResendRequest is
            answered with a SequenceReset-GapFill. A clean close writes the
            exact value.

    Raises:
        TypeError: ``path`` is not a ``str`` path, or an option has the wrong type.
        ValueError: ``path`` is empty, ``session`` is empty or over 1024 UTF-8
            bytes, or ``reserve`` is below 1.
        SeqStoreError: The file is missing and ``create`` is false, or it holds
            another session's name.
        CorruptStoreError: The file exists but holds no valid state.
        StoreLockedError: Another open store, here or in another process, holds the file.
        StoreIOError: Creating or reading the file failed (the ``OSError`` is chained).
        OSError: The file cannot be opened at all (a directory, no permission).
    """

    _durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        create: bool = True,
        session: str | None = None,
        reserve: int = 1,
    ) -> None:
        self._fd = -1
        self._key: tuple[int, int] | None = None
        path_str = _check_path(path)
        fsync = _check_bool(fsync, "fsync")
        create = _check_bool(create, "create")
        session_bytes = _check_session(session)
        if type(reserve) is not int:
            raise TypeError(f"reserve must be an int, not {type(reserve).__name__}")
        if reserve < 1:
            raise ValueError(f"reserve must be at least 1, got {reserve}")
        fd = _open_fd(path_str, create, session_bytes)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SeqStoreError(f"{path_str} is not a regular file")
            key = (info.st_dev, info.st_ino)
            with _open_files_lock:
                if key in _open_files:
                    raise StoreLockedError(
                        errno.EWOULDBLOCK, f"{path_str} is already open in this process"
                    )
                try:
                    _lock(fd)
                except BlockingIOError as exc:
                    raise StoreLockedError(
                        errno.EWOULDBLOCK,
                        f"{path_str} is held by another open store (another process, or "
                        "another open file in this one)",
                    ) from exc
                _open_files.add(key)
            self._key = key
            parsed = _parse(_read_image(fd, path_str), path_str)
            if session is not None and parsed.session != session:
                held = "no session name" if parsed.session is None else repr(parsed.session)
                raise SeqStoreError(
                    f"{path_str} holds {held}, not session {session!r}: two sessions must "
                    "never share one file"
                )
        except BaseException:
            self._forget()
            os.close(fd)
            raise
        self._fd = fd
        self._path = path_str
        self._fsync = fsync
        self._session = parsed.session
        self._seed = parsed.seed
        # The newest slot as written: what the next write is compared with.
        newest = parsed.newest
        self._generation = newest.generation
        super().__init__()
        self._set_reserve(reserve)
        self._restore(parsed.next_out, parsed.next_in, parsed.created)
        # The core keeps its own (equal) datetime object; changes compare by identity.
        self._written = (newest.next_out - 1, newest.next_in, self._created, newest.out_limit)
        self._created_key = self._created
        self._created_us = _micros(newest.created)
        if parsed.damaged is not None:
            _log.warning(
                "%s: slot %d is damaged (a torn write or a bad sector); resuming from the "
                "other slot with next_out=%d (one past its value, so no number is reused) "
                "and next_in=%d (at most one change behind)",
                path_str,
                parsed.damaged,
                parsed.next_out,
                parsed.next_in,
            )

    # -- the durable hooks ---------------------------------------------------

    def _persist(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        last_out = next_out - 1
        w_out, w_in, w_created, w_limit = self._written
        advance = last_out - w_out
        headroom = min(max(2 * advance, self._reserve, 1), _MAX_HEADROOM)
        out_limit = min(last_out + headroom, MAX_SEQ_NUM)
        if last_out > w_limit or next_in < w_in or created is not w_created:
            # Past the newest slot's limit, lowering the inbound mark, or a
            # reset: put the new state in both slots first, so a slot damaged
            # later can never bring back a state that reuses a number or
            # has an inbound mark ahead of this one. Rare: not the hot path.
            self._write(last_out, next_in, created, out_limit)
        self._write(last_out, next_in, created, out_limit)
        self._written = (last_out, next_in, created, out_limit)

    def _write(
        self, last_out: int, next_in: int, created: datetime.datetime, out_limit: int
    ) -> None:
        """Write one slot over the older one and sync it."""
        if created is not self._created_key:
            self._created_key, self._created_us = created, _micros(created)
        generation = self._generation + 1
        # Inlined _slot(): this is the hot path, next to a ~1 µs pwrite.
        body = _pack_body(generation, last_out, next_in - 1, self._created_us, out_limit)
        data = body + _pack_crc(_crc32(body, self._seed))
        try:
            _pwrite(self._fd, data, _SLOT_OFFSET[generation & 1])
            if self._fsync:
                _sync_file(self._fd)
        except OSError as exc:
            raise StoreIOError(
                exc.errno, f"could not make a change durable in {self._path}: {exc.strerror}"
            ) from exc
        self._generation = generation

    def _release(self) -> None:
        fd, self._fd = self._fd, -1
        failed: OSError | None = None
        try:
            if not self._fsync and self._failure is None:
                # A clean close makes even an fsync=False store's last state durable.
                try:
                    _sync_file(fd)
                except OSError as exc:
                    failed = exc
        finally:
            self._forget()
            try:
                _close(fd)  # releases the flock
            except OSError:
                pass  # the descriptor is gone either way
        if failed is not None:
            raise StoreIOError(
                failed.errno, f"could not sync {self._path} on close: {failed.strerror}"
            ) from failed

    def _forget(self) -> None:
        key, self._key = self._key, None
        if key is not None:
            with _open_files_lock:
                _open_files.discard(key)

    def __del__(self) -> None:
        # A store dropped without close() gives its lock back, as a file would.
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            self._fd = -1
            self._forget()
            try:
                os.close(fd)
            except OSError:
                pass
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1)

    # -- information -------------------------------------------------------------

    @property
    def path(self) -> str:
        """The path of the file, as given."""
        return self._path

    @property
    def fsync(self) -> bool:
        """Whether each change is synced to the device before it is acknowledged."""
        return self._fsync

    @property
    def session(self) -> str | None:
        """The session name stored in the file, or ``None`` if it has none."""
        return self._session

    def as_async(self) -> AsyncFileSeqStore:
        """Return an :class:`AsyncFileSeqStore` over this same open file and counters."""
        return AsyncFileSeqStore._over(self)

    def __repr__(self) -> str:
        if self._closed:
            return f"<{type(self).__name__} {self._path!r} closed>"
        return (
            f"<{type(self).__name__} {self._path!r} next_out={self._next_out}, "
            f"next_in={self._next_in}>"
        )


class AsyncFileSeqStore(AsyncAdminShell[FileSeqStore]):
    """The async twin of :class:`FileSeqStore`, for asyncio and trio.

    Every coroutine runs the sync store's method in a worker thread through
    anyio, so the file I/O (and each sync) never blocks the event loop. The
    constructor opens the file synchronously, once; inside a running event
    loop prefer ``await AsyncFileSeqStore.open(path)``, which opens it in a
    worker thread. ``as_sync()`` returns the :class:`FileSeqStore` over the
    same open file.

    Args:
        path: As for :class:`FileSeqStore`.
        fsync: As for :class:`FileSeqStore`.
        create: As for :class:`FileSeqStore`.
        session: As for :class:`FileSeqStore`.
        reserve: As for :class:`FileSeqStore`.

    Raises:
        TypeError: As for :class:`FileSeqStore`.
        ValueError: As for :class:`FileSeqStore`.
        SeqStoreError: As for :class:`FileSeqStore` (and its subclasses
            CorruptStoreError, StoreLockedError, StoreIOError).
        OSError: As for :class:`FileSeqStore`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        create: bool = True,
        session: str | None = None,
        reserve: int = 1,
    ) -> None:
        super().__init__(
            FileSeqStore(path, fsync=fsync, create=create, session=session, reserve=reserve)
        )

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        create: bool = True,
        session: str | None = None,
        reserve: int = 1,
    ) -> Self:
        """Open (or create) the store in a worker thread and return its async twin.

        The opening is shielded from cancellation: it takes milliseconds, and a
        store opened by a cancelled call would otherwise hold its lock unseen.

        Args:
            path: As for :class:`FileSeqStore`.
            fsync: As for :class:`FileSeqStore`.
            create: As for :class:`FileSeqStore`.
            session: As for :class:`FileSeqStore`.
            reserve: As for :class:`FileSeqStore`.

        Returns:
            The open async store.

        Raises:
            TypeError: As for :class:`FileSeqStore`.
            ValueError: As for :class:`FileSeqStore`.
            SeqStoreError: As for :class:`FileSeqStore`.
            OSError: As for :class:`FileSeqStore`.
        """
        opener = functools.partial(
            FileSeqStore, path, fsync=fsync, create=create, session=session, reserve=reserve
        )
        with anyio.CancelScope(shield=True):
            sync = await offload(opener)
        return cls._over(sync)

    @property
    def path(self) -> str:
        """The path of the file, as given."""
        return self._wrapped.path


class FileState(NamedTuple):
    """What :func:`read_file_state` found in a store file."""

    state: SeqState
    """Both counters, as a reopened store would have them."""
    created: datetime.datetime
    """The creation (or last reset) time, aware UTC."""
    session: str | None
    """The session name stored in the file, or ``None``."""


def read_file_state(path: str | os.PathLike[str]) -> FileState:
    """Read a file store's state without opening it as a store.

    For operators (``fixseq show``): it never takes the writer's lock, so it
    works while an engine holds the store, and it never creates or changes
    anything. The state is the one a store opened now would resume from, by
    the same reading rule (a damaged slot means next_out one past the
    survivor's). A slot caught half-written by a live writer is read again.

    Args:
        path: The store file.

    Returns:
        The counters, the creation time and the session name.

    Raises:
        TypeError: ``path`` is not a ``str`` path.
        SeqStoreError: There is no file at ``path``.
        CorruptStoreError: The file holds no valid state.
        StoreIOError: Reading failed.
        OSError: The file cannot be opened for reading.
    """
    path_str = _check_path(path)
    try:
        fd = _open(path_str, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise SeqStoreError(f"no file store at {path_str}") from exc
    try:
        previous = b""
        # A live writer may be mid-pwrite: read again until the slots are whole
        # or two reads agree (then the damage is real). Bounded, no sleeping.
        for _ in range(16):
            image = _read_image(fd, path_str)
            try:
                parsed = _parse(image, path_str)
            except CorruptStoreError:
                if image == previous:
                    raise
            else:
                if parsed.damaged is None or image == previous:
                    break
            previous = image
        else:
            parsed = _parse(image, path_str)
    finally:
        os.close(fd)
    return FileState(SeqState(parsed.next_out, parsed.next_in), parsed.created, parsed.session)
