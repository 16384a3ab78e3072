"""A store's own file: the path checks, the OS-error wording and the atomic creation.

Shared by the file store and the SQLite store, which both keep their state in a
file at a path the user names. Every OS call looks its ``os`` function up at
call time, so a test can fail any one of them by monkeypatching ``os``.
"""

from __future__ import annotations

import errno
import os
import secrets

from .errors import SeqStoreError, StoreIOError

__all__ = [
    "check_not_dangling",
    "discard",
    "io_error",
    "publish",
    "sync_dir",
    "temp_path",
]

# What the OS's words leave out, by errno: how the operator gets past it.
_HINTS = {
    errno.EACCES: "the user running fixseq needs read and write permission on the file, and "
    "write permission on its directory to create it",
    errno.EPERM: "the user running fixseq is not allowed to do this here",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EROFS: "the file system is mounted read-only",
    errno.ELOOP: "the path has a loop of symbolic links",
    errno.EISDIR: "the path is a directory; a store is one file",
}


def io_error(exc: OSError, doing: str, path: str) -> StoreIOError:
    """The :class:`~fixseq.StoreIOError` for ``exc``, raised while ``doing`` the store at ``path``.

    The message names the store's own path (never a temporary file's), the
    OS's reason and, where it helps, what to do; ``errno`` is the OS's. The
    caller raises it ``from exc``.
    """
    hint = _HINTS.get(exc.errno or 0)
    if exc.errno == errno.ENOENT:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            hint = f"its directory {directory} does not exist; fixseq creates no directories"
    reason = exc.strerror or str(exc)
    return StoreIOError(
        exc.errno, f"could not {doing} {path}: {reason}" + (f" ({hint})" if hint else "")
    )


def check_not_dangling(path: str, what: str) -> None:
    """Refuse a symbolic link whose target does not exist, whatever ``create`` says.

    A store reached through a link whose target is gone (an unmounted volume,
    a moved directory) is a store known to exist that is missing: creating a
    fresh one through the link would start the session again at 1.

    Raises:
        SeqStoreError: ``path`` is a dangling symbolic link; the message names
            the link and its target.
    """
    if os.path.islink(path) and not os.path.exists(path):
        try:
            target = os.readlink(path)
        except OSError:  # pragma: no cover - it was a link a moment ago
            target = "?"
        resolved = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), target))
        raise SeqStoreError(
            f"{what} {path} is a dangling symbolic link to {target!r} ({resolved} "
            "does not exist: an unmounted volume, or a moved file?); fixseq creates nothing "
            "through it: restore the target, or remove the link to start a new store"
        )


def temp_path(path: str) -> tuple[str, str]:
    """Return ``path``'s directory and a fresh hidden temporary name beside it.

    The random part never collides with a later attempt, so a temporary file a
    crash left behind is never read and never in the way (remove it at will).
    """
    directory, base = os.path.split(os.path.abspath(path))
    return directory, os.path.join(directory, f".{base}.{secrets.token_hex(8)}.fixseq-tmp")


def publish(temp: str, path: str) -> bool:
    """Give the finished file ``temp`` the name ``path``, never replacing a file there.

    Returns:
        True if ``temp`` was renamed (it has no name of its own any more);
        False if it was linked, or another opener made ``path`` first (theirs
        is kept): either way the caller discards ``temp``.

    Raises:
        OSError: The link (or rename) failed.
    """
    try:
        os.link(temp, path)  # atomic, and never replaces a file another opener made
    except FileExistsError:
        return False  # another opener created it first: theirs is kept
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links on this file system: rename is atomic too but replaces,
        # so a creator racing within this window could replace ours (documented).
        if not os.path.lexists(path):
            os.rename(temp, path)
            return True
    return False


def discard(temp: str) -> None:
    """Remove a temporary file, quietly: one left behind is never read, never in the way."""
    try:
        os.unlink(temp)
    except OSError:
        pass


def sync_dir(directory: str) -> None:
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
