"""The durable file store: one small file per FIX session, crash-safe.

The format, byte by byte, and the reading rule are in :mod:`fixseq._fileformat`
and ``docs/stores/file.md``; this module does the I/O: atomic creation, the
lock, the writes and syncs, and the stores themselves.

Every OS call goes through a small private function that looks its ``os``
function up at call time, so a test can fail any one of them by monkeypatching
``os`` (python-atomicwrites' habit).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import sys
import threading
from typing import TYPE_CHECKING, NamedTuple

from ._core import SeqCounters
from ._fileformat import (
    FILE_SIZE,
    MAX_SESSION_BYTES,
    SLOT_OFFSET,
    SLOT_SIZE,
    crc32,
    micros,
    new_image,
    pack_body,
    pack_crc,
    parse,
    plan_write,
)
from ._paths import check_not_dangling, discard, io_error, publish, temp_path
from ._paths import sync_dir as _sync_dir  # one name here, so a test can skip the step
from ._protocols import SeqState
from ._rules import check_bool, check_session_name, utc_now
from ._twins import AsyncAdminShell, open_in_thread
from .errors import CorruptStoreError, SeqStoreError, StoreIOError, StoreLockedError

if sys.platform != "win32":  # the file store needs POSIX; `import fixseq` must not
    import fcntl

if TYPE_CHECKING:
    import datetime

    from typing_extensions import Self

__all__ = ["AsyncFileSeqStore", "FileSeqStore", "FileState", "read_file_state"]

_log = logging.getLogger("fixseq.file")

# Stores open in this process, by (st_dev, st_ino): a second opener is refused
# even where flock() is per process rather than per open file (NFS emulates it
# with fcntl locks).
_open_files: set[tuple[int, int]] = set()
_open_files_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _open_files_lock
    _open_files_lock = threading.Lock()  # a thread of the parent may have held it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the OS calls, one small function each (looked up on ``os`` at call time) --


def _open(path: str, flags: int, mode: int = 0o600) -> int:
    return os.open(path, flags | os.O_CLOEXEC, mode)


def _close(fd: int) -> None:
    os.close(fd)


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``, however many calls it takes."""
    written = os.pwrite(fd, data, offset)
    if written == len(data):
        return
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


def _fchmod(fd: int, mode: int) -> None:
    os.fchmod(fd, mode)


def _lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


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


def _check_session(session: object) -> str | None:
    """The core's rule for any store's session name, plus this format's length limit."""
    if session is None:
        return None
    name = check_session_name(session)
    if len(name.encode("utf-8")) > MAX_SESSION_BYTES:
        raise ValueError(f"session must be at most {MAX_SESSION_BYTES} UTF-8 bytes")
    return name


# -- creation -----------------------------------------------------------------


def _create(path: str, session: bytes) -> None:
    """Create the file atomically: all of it appears, durable, or none of it.

    A crash leaves at most a temporary ``.NAME.*.fixseq-tmp`` file that is
    never read; remove it at will. If another process creates ``path`` first,
    theirs is kept.

    Raises:
        StoreIOError: The OS refused (the message names ``path``, not the
            temporary file); nothing is left behind.
    """
    directory, temp = temp_path(path)
    image = new_image(session, utc_now())
    pending = False  # the temporary file exists and still has its name
    try:
        fd = _open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        pending = True
        try:
            _fchmod(fd, 0o600)  # the umask may have taken the owner's bits too
            _pwrite(fd, image, 0)
            _sync_file(fd)
        finally:
            _close(fd)
        if publish(temp, path):
            pending = False
        # Also when another opener made the file: it may have died before
        # syncing the directory, and we are about to acknowledge numbers in it.
        if pending:
            discard(temp)
            pending = False
        _sync_dir(directory)
    except OSError as exc:
        raise io_error(exc, "create the file store", path) from exc
    finally:
        if pending:
            discard(temp)


def _open_fd(path: str, create: bool, session: str | None) -> int:
    """Open the store's file read-write, creating it first if it is missing and allowed.

    Raises:
        SeqStoreError: The file is missing and ``create`` is false, or ``path``
            is a dangling symbolic link.
        StoreIOError: The OS refused to open or create it.
    """
    for _ in range(3):
        try:
            return _open(path, os.O_RDWR)
        except FileNotFoundError as exc:
            check_not_dangling(path, "file store")
            if not create:
                raise SeqStoreError(
                    f"no file store at {path} and create=False: a store known to exist is "
                    "missing, so fixseq refuses to start the session again at 1"
                ) from exc
        except OSError as exc:
            raise io_error(exc, "open the file store", path) from exc
        _create(path, session.encode("utf-8") if session is not None else b"")
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
        ValueError: ``path`` is empty, ``session`` is empty, holds a NUL or is
            over 1024 UTF-8 bytes; ``reserve`` is outside ``1..MAX_SEQ_NUM``
            (an [`InvalidSeqNumError`][fixseq.InvalidSeqNumError]).
        SeqStoreError: The file is missing and ``create`` is false, it holds
            another session's name, or ``path`` is a dangling symbolic link
            (nothing is created through one, whatever ``create`` says).
        CorruptStoreError: The file exists but holds no valid state.
        StoreLockedError: Another open store, here or in another process, holds the file.
        StoreIOError: Opening, creating or reading the file failed (a missing
            or read-only directory, no permission, a directory at ``path``);
            the message names ``path`` and the cause, ``errno`` is the OS's and
            the ``OSError`` is chained.
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
        if sys.platform == "win32":  # pragma: no cover - not a supported platform
            raise NotImplementedError("FileSeqStore needs POSIX: flock, pwrite, fdatasync")
        path_str = _check_path(path)
        fsync = check_bool(fsync, "fsync")
        create = check_bool(create, "create")
        name = _check_session(session)
        super().__init__()
        self._set_reserve(reserve)  # the core validates it, before any file is touched
        fd = _open_fd(path_str, create, name)
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
            parsed = parse(_read_image(fd, path_str), path_str)
            if name is not None and parsed.session != name:
                held = "no session name" if parsed.session is None else repr(parsed.session)
                raise SeqStoreError(
                    f"{path_str} holds {held}, not session {name!r}: two sessions must "
                    "never share one file"
                )
        except BaseException:
            self._forget()
            _close(fd)
            raise
        self._fd = fd
        self._path = path_str
        self._fsync = fsync
        self._session = parsed.session
        self._seed = parsed.seed
        # The newest slot as written: what the next write is compared with.
        newest = parsed.newest
        self._generation = newest.generation
        self._restore(parsed.next_out, parsed.next_in, parsed.created)
        # The core keeps its own (equal) datetime object; changes compare by identity.
        self._written = (newest.next_out - 1, newest.next_in, self._created, newest.out_limit)
        self._created_key = self._created
        self._created_us = micros(newest.created)
        if parsed.damaged is not None:
            _log.warning(
                "%s: slot %d is damaged (a torn write or a bad sector); resuming from the "
                "other slot with next_out=%d (past anything the lost slot covered: no reuse) "
                "and next_in=%d (at most one change behind)",
                path_str,
                parsed.damaged,
                parsed.next_out,
                parsed.next_in,
            )

    # -- the durable hooks ---------------------------------------------------

    def _persist(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        last_out = next_out - 1
        out_limit, twice = plan_write(self._written, last_out, next_in, created, self._reserve)
        if twice:  # rare: a reset, set_next_in downwards, a jump (see plan_write)
            self._write(last_out, next_in, created, out_limit)
        self._write(last_out, next_in, created, out_limit)
        self._written = (last_out, next_in, created, out_limit)

    def _write(
        self, last_out: int, next_in: int, created: datetime.datetime, out_limit: int
    ) -> None:
        """Write one slot over the older one and sync it."""
        if created is not self._created_key:
            self._created_key, self._created_us = created, micros(created)
        generation = self._generation + 1
        # encode_slot() and _pwrite(), inlined: this is the hot path, next to a
        # ~1 µs pwrite (os.pwrite is still looked up at call time).
        body = pack_body(generation, last_out, next_in - 1, self._created_us, out_limit)
        data = body + pack_crc(crc32(body, self._seed))
        offset = SLOT_OFFSET[generation & 1]
        fd = self._fd
        try:
            written = os.pwrite(fd, data, offset)
            if written != SLOT_SIZE:
                if written <= 0:
                    raise OSError(errno.EIO, "pwrite wrote nothing")
                _pwrite(fd, data[written:], offset + written)
            if self._fsync:
                _sync_file(fd)
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

    def _after_fork_in_child(self) -> None:
        # The child's copy of the descriptor shares the parent's open file (and so its
        # flock): close the copy now, so that the lock is the parent's alone and goes
        # when the parent closes, however long the child lives. Closing a copy never
        # releases a flock another descriptor of the same open file still holds.
        fd, self._fd = self._fd, -1
        key, self._key = self._key, None
        if key is not None:
            _open_files.discard(key)  # the child opens the file anew, or is refused by the lock
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def _forget(self) -> None:
        key, self._key = self._key, None
        if key is not None:
            with _open_files_lock:
                _open_files.discard(key)

    def __del__(self) -> None:
        # A store dropped without close() gives its lock back, as a file would.
        # Quietly: no ResourceWarning, because test code (the conformance kit
        # among it) drops stores on purpose and often runs with warnings as errors.
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            self._fd = -1
            self._forget()
            try:
                os.close(fd)
            except OSError:
                pass

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

    The file I/O (each write and sync) runs in a worker thread through anyio,
    so it never blocks the event loop; the in-memory change runs on the loop,
    and tasks changing the store together share one write and sync (group
    commit: one worker thread per write, not one per call). The
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

        The opening is shielded from cancellation (it takes milliseconds); if
        the calling task was cancelled meanwhile, the store is closed again and
        the cancellation propagates, so no lock is left held unseen.

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
        return cls._over(await open_in_thread(opener, FileSeqStore.close))

    @property
    def path(self) -> str:
        """The path of the file, as given."""
        return self._wrapped.path

    @property
    def fsync(self) -> bool:
        """Whether each change is synced to the device before it is acknowledged."""
        return self._wrapped.fsync

    @property
    def session(self) -> str | None:
        """The session name stored in the file, or ``None`` if it has none."""
        return self._wrapped.session


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
        SeqStoreError: There is no file at ``path``, or it is a dangling
            symbolic link.
        CorruptStoreError: The file holds no valid state.
        StoreIOError: Opening or reading failed (no permission, say); the
            ``OSError`` is chained.
    """
    path_str = _check_path(path)
    try:
        fd = _open(path_str, os.O_RDONLY)
    except FileNotFoundError as exc:
        check_not_dangling(path_str, "file store")
        raise SeqStoreError(f"no file store at {path_str}") from exc
    except OSError as exc:
        raise io_error(exc, "read the file store", path_str) from exc
    try:
        previous = b""
        # A live writer may be mid-pwrite: read again until the slots are whole
        # or two reads agree (then the damage is real). Bounded, no sleeping.
        for _ in range(16):
            image = _read_image(fd, path_str)
            try:
                parsed = parse(image, path_str)
            except CorruptStoreError:
                if image == previous:
                    raise
            else:
                if parsed.damaged is None or image == previous:
                    break
            previous = image
        else:
            parsed = parse(image, path_str)
    finally:
        os.close(fd)
    return FileState(SeqState(parsed.next_out, parsed.next_in), parsed.created, parsed.session)
