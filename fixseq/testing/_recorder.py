"""Recording a store's file operations in one directory, for the power-cut group.

While a :class:`Recorder` is installed, the ``os`` functions a store writes
files with (``open``, ``close``, ``write``, ``pwrite``, ``ftruncate``,
``truncate``, ``fsync``, ``fdatasync``, ``rename``, ``replace``, ``link``,
``unlink``, ``remove``) and the builtin ``open()`` (``io.open``, the same
function) are wrapped. A call about anything outside the store's directory
goes straight to the real function. A call about the directory or a file in
it runs the real function too, and is then appended to :attr:`Recorder.ops`
in the order the calls happened, under a lock, whichever thread made it (an
async store's worker threads included).

Files opened with ``open()`` in the directory are opened with the pure-Python
``_pyio.open`` instead of the C one: the same classes and the same behaviour,
but every byte they write reaches the disk through ``os.write`` (and every
close through ``os.close``), which the recorder sees. Nothing else is
patched: ``fstat``, ``flock``, ``lseek``, ``pread``, ``fchmod`` work on the
real descriptors as always. Everything is put back when the recorder is
uninstalled, even if the store raised.

What the recorder cannot see (a C library such as sqlite3 writing with its
own calls, ``mmap``, a function imported with ``from os import pwrite``
before the run) shows up afterwards as a difference between the modelled
files and the real directory, and the power-cut check is then skipped with
that reason, never passed.
"""

from __future__ import annotations

import builtins
import io
import itertools
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Op", "Recorder", "apply_data", "apply_dir", "files_after"]

_OS_NAMES = (
    "open",
    "close",
    "write",
    "pwrite",
    "ftruncate",
    "truncate",
    "fsync",
    "fdatasync",
    "rename",
    "replace",
    "link",
    "unlink",
    "remove",
)


@dataclass(frozen=True)
class Op:
    """One recorded file operation.

    Kinds: ``create`` (a new name for a new file), ``write``, ``trunc``,
    ``sync`` (fsync or fdatasync of a file), ``dirsync`` (fsync of the
    directory), ``link``, ``rename`` (also ``os.replace``), ``unlink``.
    """

    kind: str
    name: str = ""
    """The file's name in the directory (create, unlink; the source of link/rename)."""
    ino: int = 0
    """The recorder's own number for the file (create, write, trunc, sync)."""
    offset: int = 0
    """Where a write starts, or the length a trunc sets."""
    data: bytes = b""
    """What a write wrote."""
    target: str = ""
    """The new name of a link or rename."""
    call: str = ""
    """The call as the store made it, for a message."""


def apply_data(data: bytes, ops: list[Op]) -> bytes:
    """Return a file's content after ``ops`` (writes and truncations) on ``data``."""
    content = bytearray(data)
    for op in ops:
        if op.kind == "write":
            end = op.offset + len(op.data)
            if len(content) < op.offset:
                content.extend(bytes(op.offset - len(content)))
            content[op.offset : end] = op.data
        elif op.kind == "trunc":
            if len(content) > op.offset:
                del content[op.offset :]
            else:
                content.extend(bytes(op.offset - len(content)))
    return bytes(content)


def apply_dir(entries: dict[str, int], ops: list[Op]) -> dict[str, int]:
    """Return the directory's names (name -> file) after the directory ops ``ops``."""
    result = dict(entries)
    for op in ops:
        if op.kind == "create":
            result[op.name] = op.ino
        elif op.kind == "link":
            if op.name in result:
                result[op.target] = result[op.name]
        elif op.kind == "rename":
            if op.name in result:
                result[op.target] = result.pop(op.name)
        elif op.kind == "unlink":
            result.pop(op.name, None)
    return result


class Recorder:
    """Records the file operations made in one directory while installed.

    Args:
        directory: The store's directory; it should be empty when recording starts.
    """

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self._real_directory = os.path.realpath(directory)
        self.ops: list[Op] = []
        self.unmodelled: list[str] = []
        """What the recorder saw but cannot model (a subdirectory, a name from outside)."""
        self._names: dict[str, int] = {}  # the modelled directory: name -> file
        self._fds: dict[int, int | None] = {}  # descriptor -> file (None: the directory)
        self._inos = itertools.count(1)
        self._lock = threading.RLock()
        self._saved: dict[tuple[object, str], Any] = {}
        self._real: dict[str, Any] = {}

    # -- installing ---------------------------------------------------------------

    def install(self) -> None:
        """Wrap the ``os`` functions and ``open()`` (remembering what was there)."""
        for name in _OS_NAMES:
            self._real[name] = getattr(os, name)
        self._real["builtin_open"] = builtins.open
        self._real["io_open"] = io.open
        wrappers: dict[str, Callable[..., Any]] = {
            "open": self._os_open,
            "close": self._os_close,
            "write": self._os_write,
            "pwrite": self._os_pwrite,
            "ftruncate": self._os_ftruncate,
            "truncate": self._os_truncate,
            "fsync": self._sync_call("fsync"),
            "fdatasync": self._sync_call("fdatasync"),
            "rename": self._move_call("rename"),
            "replace": self._move_call("replace"),
            "link": self._link,
            "unlink": self._unlink_call("unlink"),
            "remove": self._unlink_call("remove"),
        }
        for name, wrapper in wrappers.items():
            self._saved[(os, name)] = self._real[name]
            setattr(os, name, wrapper)
        self._saved[(builtins, "open")] = builtins.open
        self._saved[(io, "open")] = io.open
        builtins.open = self._file_open
        io.open = self._file_open

    def uninstall(self) -> None:
        """Put back every function :meth:`install` replaced."""
        for (module, name), value in self._saved.items():
            setattr(module, name, value)
        self._saved.clear()

    # -- where a path is ----------------------------------------------------------

    def _where(self, path: object, dir_fd: int | None = None) -> tuple[str, str]:
        """Classify a path: ("dir", ""), ("in", name), ("sub", path) or ("out", "")."""
        if isinstance(path, int):
            return "out", ""
        try:
            text = os.fsdecode(os.fspath(path))  # type: ignore[call-overload]
        except TypeError:
            return "out", ""
        if dir_fd is not None and not os.path.isabs(text):
            if self._fds.get(dir_fd, 0) is None:
                text = os.path.join(self.directory, text)
            else:
                return "out", ""
        full = os.path.abspath(text)
        if full in (self.directory, self._real_directory):
            return "dir", ""
        parent, name = os.path.split(full)
        if parent in (self.directory, self._real_directory):
            return "in", name
        if os.path.realpath(parent) == self._real_directory:
            return "in", name
        if full.startswith((self.directory + os.sep, self._real_directory + os.sep)):
            return "sub", full
        return "out", ""

    def _note(self, what: str) -> None:
        if what not in self.unmodelled:
            self.unmodelled.append(what)

    def _record(self, op: Op) -> None:
        self.ops.append(op)

    # -- the wrappers ---------------------------------------------------------------

    def _os_open(
        self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        real = self._real["open"]
        where, name = self._where(path, dir_fd)
        if where == "out":
            return int(real(path, flags, mode, dir_fd=dir_fd))
        if where == "sub":
            self._note(f"the store opened {name}, in a subdirectory (not modelled)")
            return int(real(path, flags, mode, dir_fd=dir_fd))
        with self._lock:
            if where == "dir":
                fd = int(real(path, flags, mode, dir_fd=dir_fd))
                self._fds[fd] = None
                return fd
            known = name in self._names
            existed = known or os.path.lexists(os.path.join(self.directory, name))
            fd = int(real(path, flags, mode, dir_fd=dir_fd))
            if not known:
                if existed:
                    self._note(f"{name} was in the directory before the kit saw it created")
                    return fd
                ino = next(self._inos)
                self._names[name] = ino
                self._record(Op("create", name=name, ino=ino, call=f"os.open({name!r}, O_CREAT)"))
            ino = self._names[name]
            self._fds[fd] = ino
            if flags & os.O_TRUNC and existed:
                self._record(Op("trunc", ino=ino, offset=0, call=f"os.open({name!r}, O_TRUNC)"))
            return fd

    def _file_name(self, ino: int) -> str:
        for name, known in self._names.items():
            if known == ino:
                return name
        return f"<file {ino}, no longer named>"

    def _os_close(self, fd: int) -> None:
        real = self._real["close"]
        if fd not in self._fds:
            real(fd)
            return
        with self._lock:
            # Forget the descriptor first: once closed, its number may be reused
            # at once by another thread for a file the kit must not attribute here.
            self._fds.pop(fd, None)
            real(fd)

    def _os_write(self, fd: int, data: Any) -> int:
        real = self._real["write"]
        if fd not in self._fds:
            return int(real(fd, data))
        with self._lock:
            written = int(real(fd, data))
            ino = self._fds.get(fd)
            if ino is not None and written > 0:
                position = os.lseek(fd, 0, os.SEEK_CUR)  # also right with O_APPEND
                chunk = bytes(memoryview(data).cast("B")[:written])
                self._record(
                    Op(
                        "write",
                        ino=ino,
                        offset=position - written,
                        data=chunk,
                        call=f"os.write({self._file_name(ino)!r}, {written} bytes)",
                    )
                )
            return written

    def _os_pwrite(self, fd: int, data: Any, offset: int) -> int:
        real = self._real["pwrite"]
        if fd not in self._fds:
            return int(real(fd, data, offset))
        with self._lock:
            written = int(real(fd, data, offset))
            ino = self._fds.get(fd)
            if ino is not None and written > 0:
                chunk = bytes(memoryview(data).cast("B")[:written])
                self._record(
                    Op(
                        "write",
                        ino=ino,
                        offset=offset,
                        data=chunk,
                        call=f"os.pwrite({self._file_name(ino)!r}, {written} bytes at {offset})",
                    )
                )
            return written

    def _os_ftruncate(self, fd: int, length: int) -> None:
        real = self._real["ftruncate"]
        if fd not in self._fds:
            real(fd, length)
            return
        with self._lock:
            real(fd, length)
            ino = self._fds.get(fd)
            if ino is not None:
                name = self._file_name(ino)
                self._record(
                    Op("trunc", ino=ino, offset=length, call=f"os.ftruncate({name!r}, {length})")
                )

    def _os_truncate(self, path: Any, length: int) -> None:
        real = self._real["truncate"]
        if isinstance(path, int):
            self._os_ftruncate(path, length)
            return
        where, name = self._where(path)
        if where != "in":
            if where == "sub":
                self._note(f"the store truncated {name}, in a subdirectory (not modelled)")
            real(path, length)
            return
        with self._lock:
            real(path, length)
            ino = self._names.get(name)
            if ino is None:
                self._note(f"the store truncated {name}, which the kit never saw created")
                return
            self._record(Op("trunc", ino=ino, offset=length, call=f"os.truncate({name!r})"))

    def _sync_call(self, which: str) -> Callable[[Any], None]:
        real = self._real[which]

        def sync(fd: Any) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            if number not in self._fds:
                real(fd)
                return
            with self._lock:
                real(fd)
                ino = self._fds.get(number, 0)
                if ino is None:
                    self._record(Op("dirsync", call=f"os.{which}(the directory)"))
                elif ino:
                    name = self._file_name(ino)
                    self._record(Op("sync", ino=ino, call=f"os.{which}({name!r})"))

        return sync

    def _move_call(self, which: str) -> Callable[..., None]:
        real = self._real[which]

        def move(
            src: Any, dst: Any, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None
        ) -> None:
            a, a_name = self._where(src, src_dir_fd)
            b, b_name = self._where(dst, dst_dir_fd)
            if a == "out" and b == "out":
                real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
                return
            with self._lock:
                real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
                if a != "in" or b != "in" or a_name not in self._names:
                    self._note(
                        f"os.{which}({src!r}, {dst!r}) moves a file in or out of the directory"
                    )
                    return
                self._names[b_name] = self._names.pop(a_name)
                self._record(
                    Op(
                        "rename",
                        name=a_name,
                        target=b_name,
                        call=f"os.{which}({a_name!r}, {b_name!r})",
                    )
                )

        return move

    def _link(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        follow_symlinks: bool = True,
    ) -> None:
        real = self._real["link"]
        a, a_name = self._where(src, src_dir_fd)
        b, b_name = self._where(dst, dst_dir_fd)
        kwargs = {
            "src_dir_fd": src_dir_fd,
            "dst_dir_fd": dst_dir_fd,
            "follow_symlinks": follow_symlinks,
        }
        if a == "out" and b == "out":
            real(src, dst, **kwargs)
            return
        with self._lock:
            real(src, dst, **kwargs)
            if a != "in" or b != "in" or a_name not in self._names:
                self._note(f"os.link({src!r}, {dst!r}) links a file in or out of the directory")
                return
            self._names[b_name] = self._names[a_name]
            self._record(
                Op("link", name=a_name, target=b_name, call=f"os.link({a_name!r}, {b_name!r})")
            )

    def _unlink_call(self, which: str) -> Callable[..., None]:
        real = self._real[which]

        def unlink(path: Any, *, dir_fd: int | None = None) -> None:
            where, name = self._where(path, dir_fd)
            if where == "out":
                real(path, dir_fd=dir_fd)
                return
            with self._lock:
                real(path, dir_fd=dir_fd)
                if where != "in" or name not in self._names:
                    self._note(f"os.{which}({path!r}) removes a file the kit never saw created")
                    return
                del self._names[name]
                self._record(Op("unlink", name=name, call=f"os.{which}({name!r})"))

        return unlink

    def _file_open(
        self,
        file: Any,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        closefd: bool = True,
        opener: Callable[[str, int], int] | None = None,
    ) -> Any:
        if isinstance(file, int):
            tracked = file in self._fds
        else:
            # "dir": tempfile.NamedTemporaryFile opens the directory's path with
            # an opener that makes the file in it.
            tracked = self._where(file)[0] in ("in", "sub", "dir")
        if not tracked:
            return self._real["builtin_open"](
                file, mode, buffering, encoding, errors, newline, closefd, opener
            )
        import _pyio  # type: ignore[import-not-found]  # the pure-Python io: its writes go through os.write, which is recorded

        return _pyio.open(file, mode, buffering, encoding, errors, newline, closefd, opener)

    # -- the result --------------------------------------------------------------------

    def modelled_files(self) -> dict[str, bytes]:
        """The directory as the recorded operations built it: name -> content."""
        return files_after(self.ops)


def files_after(ops: list[Op]) -> dict[str, bytes]:
    """The directory after every operation in ``ops``, from empty: name -> content."""
    entries: dict[str, int] = {}
    data: dict[int, list[Op]] = {}
    for op in ops:
        if op.kind in ("create", "link", "rename", "unlink"):
            entries = apply_dir(entries, [op])
        elif op.kind in ("write", "trunc"):
            data.setdefault(op.ino, []).append(op)
    return {name: apply_data(b"", data.get(ino, [])) for name, ino in entries.items()}
