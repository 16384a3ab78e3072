"""File-backed stores for the kit's second level: a correct one and its mutants.

:class:`CrcFileStore` keeps both counters in one small text file with a CRC,
rewritten by the classic recipe: write a temporary file, sync it, rename it
over the old one, sync the directory, and only then acknowledge. Each mutant
leaves out exactly one part of that recipe (or of reading the file back), the
way real FIX engines' stores do: the damage and power-cut checks must catch
each one. Nothing here imports fixseq: these are third-party stores.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

MAX = 2**63 - 1
_LINE = re.compile(rb"([0-9a-f]{8}) ([0-9]{1,19}) ([0-9]{1,19})\n\Z")


def _valid(seq_num: object) -> int:
    if isinstance(seq_num, bool) or not isinstance(seq_num, int):
        raise TypeError(f"seq_num must be an int, not {type(seq_num).__name__}")
    if not 1 <= seq_num <= MAX:
        raise ValueError(f"seq_num must be in 1..{MAX}, got {seq_num}")
    return seq_num


class CorruptFile(Exception):
    """The file holds no valid state: the store refuses to guess."""


class CrcFileStore:
    """Correct: a CRC-checked text file, replaced atomically and synced before each answer."""

    sync_file = True
    sync_dir = True
    builtin_open = False  # write the temporary file with open() rather than os.open()

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._closed = False
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            if not create:
                raise
            self._out, self._in = 1, 1
            self._save(1, 1)
        else:
            self._out, self._in = self._load(data)

    # -- the file ---------------------------------------------------------------------

    def _encode(self, next_out: int, next_in: int) -> bytes:
        payload = f"{next_out} {next_in}".encode()
        return b"%08x %s\n" % (zlib.crc32(payload), payload)

    def _load(self, data: bytes) -> tuple[int, int]:
        match = _LINE.match(data)
        if match is None:
            raise CorruptFile(f"{self.path}: not a store file ({len(data)} bytes)")
        payload = match.group(2) + b" " + match.group(3)
        if int(match.group(1), 16) != zlib.crc32(payload):
            raise CorruptFile(f"{self.path}: checksum mismatch")
        next_out, next_in = int(match.group(2)), int(match.group(3))
        if not (1 <= next_out <= MAX + 1 and 1 <= next_in <= MAX + 1):
            raise CorruptFile(f"{self.path}: numbers out of range")
        return next_out, next_in

    def _save(self, next_out: int, next_in: int) -> None:
        data = self._encode(next_out, next_in)
        temp = self.path + ".tmp"
        if self.builtin_open:
            with open(temp, "wb") as file:
                file.write(data)
                file.flush()
                if self.sync_file:
                    os.fsync(file.fileno())
        else:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                if self.sync_file:
                    os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(temp, self.path)
        if self.sync_dir:
            directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")

    # -- the five methods -----------------------------------------------------------

    def next_out(self) -> int:
        with self._lock:
            self._check_open()
            number = self._out
            if number > MAX:
                raise OverflowError("MAX_SEQ_NUM was handed out")
            self._save(number + 1, self._in)
            self._out = number + 1
            return number

    def peek_out(self) -> int:
        with self._lock:
            self._check_open()
            return self._out

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._check_open()
            if seq_num >= self._in:
                self._save(self._out, seq_num + 1)
                self._in = seq_num + 1

    def current_in(self) -> int:
        with self._lock:
            self._check_open()
            return self._in

    def reset(self) -> None:
        with self._lock:
            self._check_open()
            self._save(1, 1)
            self._out = self._in = 1

    def close(self) -> None:
        with self._lock:
            self._closed = True


def reopen_crc(store: CrcFileStore) -> CrcFileStore:
    """Close the store (again, maybe) and open its file with the store's own class."""
    store.close()
    return type(store)(store.path, create=False)


def crc_files(store: CrcFileStore) -> list[str]:
    """The store's one backing file."""
    return [store.path]


class BuiltinOpenStore(CrcFileStore):
    """Correct: as CrcFileStore, writing with open() and os.fsync(file.fileno())."""

    builtin_open = True


class TempfileStore(CrcFileStore):
    """Correct: tempfile.NamedTemporaryFile in the directory, synced, replaced, dir synced."""

    def _save(self, next_out: int, next_in: int) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        with tempfile.NamedTemporaryFile(dir=directory, delete=False) as file:
            file.write(self._encode(next_out, next_in))
            file.flush()
            os.fsync(file.fileno())
        os.replace(file.name, self.path)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the mutants ------------------------------------------------------------------------


class WriteBytesNoSync(CrcFileStore):
    """Path.write_bytes() then os.replace(): the usual "atomic write", with no sync at all."""

    def _save(self, next_out: int, next_in: int) -> None:
        temp = Path(self.path + ".tmp")
        temp.write_bytes(self._encode(next_out, next_in))
        os.replace(temp, self.path)


class NeverSyncs(CrcFileStore):
    """Never calls fsync (QuickFIX's FileStore, jetblack): a power cut loses numbers sent."""

    sync_file = False
    sync_dir = False


class BuiltinOpenNeverSyncs(BuiltinOpenStore):
    """Writes with open() and flushes, but never syncs: a flush reaches the page cache only."""

    sync_file = False
    sync_dir = False


class NoDirSync(CrcFileStore):
    """Syncs the file, never the directory after creating or renaming it."""

    sync_dir = False


class InPlaceNoChecksum(CrcFileStore):
    """Rewrites fixed-width numbers in place (pwrite + fdatasync) with no checksum.

    Atomic enough for a power cut (one small write in one sector), but a
    flipped digit reads back as another number: the damage check must catch it.
    """

    def _encode(self, next_out: int, next_in: int) -> bytes:
        return b"%020d %020d\n" % (next_out, next_in)

    def _load(self, data: bytes) -> tuple[int, int]:
        fields = data.split()
        if len(fields) != 2:
            raise CorruptFile(f"{self.path}: not a store file")
        return int(fields[0]), int(fields[1])

    def _save(self, next_out: int, next_in: int) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            created = os.fstat(fd).st_size == 0
            os.pwrite(fd, self._encode(next_out, next_in), 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if created:
            directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


class StartsAtOne(CrcFileStore):
    """Treats an empty or unparsable file as a new session (all four Python engines do)."""

    def _load(self, data: bytes) -> tuple[int, int]:
        try:
            return super()._load(data)
        except CorruptFile:
            return 1, 1


class FileOverflowOnHuge(CrcFileStore):
    """Checks the type only, then packs the number: OverflowError above 2**63 - 1."""

    def observed_in(self, seq_num: int) -> None:
        if isinstance(seq_num, bool) or not isinstance(seq_num, int):
            raise TypeError("seq_num must be an int")
        if seq_num < 1:
            raise ValueError("seq_num must be positive")
        seq_num.to_bytes(8, "little", signed=True)  # OverflowError for 2**63 and up
        super().observed_in(seq_num)


class AssertsOnBadInput(CrcFileStore):
    """Guards its input with a bare assert: AssertionError, not ValueError."""

    def observed_in(self, seq_num: int) -> None:
        assert isinstance(seq_num, int) and 1 <= seq_num <= MAX, "bad seq num"
        super().observed_in(seq_num)


# -- stores whose I/O the power-cut check cannot see -------------------------------------


class SqliteStore:
    """Correct (the sqlite3 C library syncs for it), but its writes bypass Python's os."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seq (id INTEGER PRIMARY KEY, o, i)")
        self._db.execute("INSERT OR IGNORE INTO seq VALUES (1, 1, 1)")

    def _get(self) -> tuple[int, int]:
        row: Any = self._db.execute("SELECT o, i FROM seq WHERE id = 1").fetchone()
        return int(row[0]), int(row[1])

    def next_out(self) -> int:
        with self._lock:
            number = self._get()[0]
            self._db.execute("UPDATE seq SET o = ? WHERE id = 1", (number + 1,))
            return number

    def peek_out(self) -> int:
        with self._lock:
            return self._get()[0]

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._db.execute("UPDATE seq SET i = max(i, ?) WHERE id = 1", (seq_num + 1,))

    def current_in(self) -> int:
        with self._lock:
            return self._get()[1]

    def reset(self) -> None:
        with self._lock:
            self._db.execute("UPDATE seq SET o = 1, i = 1 WHERE id = 1")

    def close(self) -> None:
        self._db.close()


class ElsewhereStore:
    """Keeps its counters outside the directory (a stand-in for a network database)."""

    servers: dict[str, list[int]] = {}  # noqa: RUF012 - the "server", shared on purpose

    def __init__(self, directory: str) -> None:
        self._lock = threading.Lock()
        self._row = self.servers.setdefault(os.path.basename(directory), [1, 1])

    def next_out(self) -> int:
        with self._lock:
            self._row[0] += 1
            return self._row[0] - 1

    def peek_out(self) -> int:
        return self._row[0]

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._row[1] = max(self._row[1], seq_num + 1)

    def current_in(self) -> int:
        return self._row[1]

    def reset(self) -> None:
        with self._lock:
            self._row[:] = [1, 1]
