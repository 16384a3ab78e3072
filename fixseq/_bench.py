"""Raw floors and an interleaved timer, for ``fixseq bench`` and benchmarks/.

A store's figure means little alone on a shared, noisy machine, so each one is
measured beside its raw floor (the least the same work can cost in Python: a
bare lock-guarded increment, a bare ``pwrite`` with or without ``fdatasync``, a
bare sqlite3 transaction, a bare psycopg statement) in the same run, round by
round, alternating which side goes first, and reported as medians with the
ratio of the two medians (so the ratio printed always agrees with the two rates
printed beside it).

Private: the package never imports ``benchmarks/``; benchmark scripts may
import the floors from here.
"""

from __future__ import annotations

import contextlib
import os
import platform
import posixpath
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Floor",
    "Measurement",
    "filesystem_of",
    "lock_floor",
    "machine",
    "measure",
    "psycopg_floor",
    "pwrite_floor",
    "sqlite_floor",
]

_PAYLOAD = bytes(32)  # a slot's worth of bytes, as a store writes per change


@dataclass
class Floor:
    """A raw floor: ``op()`` does the bare work once; ``close()`` removes what it made."""

    name: str
    op: Callable[[], object]
    close: Callable[[], None]


@dataclass
class Measurement:
    """Medians over the rounds of one store beside its floor."""

    ops_per_s: float
    floor_ops_per_s: float
    ratio: float  # ops_per_s / floor_ops_per_s: the ratio of the two medians
    rounds: int


def lock_floor() -> Floor:
    """A bare lock-guarded increment: the floor of an in-memory counter."""
    lock = threading.Lock()
    counter = [1]

    def op() -> int:
        with lock:
            value = counter[0]
            counter[0] = value + 1
            return value

    return Floor("lock-guarded increment", op, lambda: None)


def _device_sync(fd: int) -> None:
    # The same call a durable store makes: F_FULLFSYNC on macOS (fsync there
    # does not reach the platter), fdatasync elsewhere.
    if sys.platform == "darwin":
        import fcntl

        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fdatasync(fd)


def pwrite_floor(directory: str, *, sync: bool) -> Floor:
    """A bare 32-byte ``pwrite`` (then ``fdatasync`` when ``sync``) to a file in ``directory``.

    Writes alternate between two offsets of a preallocated file, as a two-slot
    store does, so no write changes the file's size.
    """
    fd, path = tempfile.mkstemp(prefix=".fixseq-bench-floor-", dir=directory)
    os.write(fd, bytes(4096))
    os.fsync(fd)
    offsets = [64, 128]
    turn = [0]

    def op() -> None:
        turn[0] ^= 1
        os.pwrite(fd, _PAYLOAD, offsets[turn[0]])
        if sync:
            _device_sync(fd)

    def close() -> None:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    name = "pwrite 32 B + fdatasync" if sync else "pwrite 32 B (no sync)"
    return Floor(name, op, close)


def sqlite_floor(directory: str, *, synchronous: str = "FULL") -> Floor:
    """A bare sqlite3 ``BEGIN IMMEDIATE; UPDATE ... RETURNING; COMMIT`` in ``directory``.

    The database is in WAL mode with the given ``synchronous`` level, the same
    pragmas a `SqliteSeqStore` uses.
    """
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"bad synchronous level {synchronous!r}")
    fd, path = tempfile.mkstemp(prefix=".fixseq-bench-floor-", suffix=".db", dir=directory)
    os.close(fd)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, last_out INTEGER NOT NULL)")
    conn.execute("INSERT INTO floor VALUES (1, 0)")
    if sqlite3.sqlite_version_info >= (3, 35):
        update = "UPDATE floor SET last_out = last_out + 1 WHERE id = 1 RETURNING last_out"
        select = None
    else:  # pragma: no cover - SQLite before RETURNING
        update = "UPDATE floor SET last_out = last_out + 1 WHERE id = 1"
        select = "SELECT last_out FROM floor WHERE id = 1"

    def op() -> object:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(update).fetchone() if select is None else None
        if select is not None:  # pragma: no cover
            row = conn.execute(select).fetchone()
        conn.execute("COMMIT")
        return row

    def close() -> None:
        conn.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)

    return Floor(f"sqlite3 UPDATE+COMMIT (WAL, {synchronous.upper()})", op, close)


def psycopg_floor(conninfo: str) -> Floor:
    """A bare psycopg ``UPDATE ... RETURNING`` in autocommit, on a scratch table it drops.

    The table is an ordinary (logged) one: a temporary table would skip the
    commit's WAL flush and make the floor unfairly cheap.

    Raises:
        ImportError: psycopg is not installed (the ``fixseq[postgres]`` extra).
    """
    import psycopg
    from psycopg import sql

    table = sql.Identifier(f"fixseq_bench_floor_{uuid.uuid4().hex[:12]}")
    conn = psycopg.connect(conninfo, autocommit=True)
    try:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, last_out bigint NOT NULL)").format(
                table
            )
        )
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 0)").format(table))
    except BaseException:
        conn.close()
        raise
    update = sql.SQL(
        "UPDATE {} SET last_out = last_out + 1 WHERE id = 1 RETURNING last_out"
    ).format(table)
    cursor = conn.cursor()

    def op() -> object:
        return cursor.execute(update, prepare=True).fetchone()

    def close() -> None:
        try:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        finally:
            conn.close()

    return Floor("psycopg UPDATE RETURNING (autocommit)", op, close)


def _batch(op: Callable[[], object], target: float = 0.002) -> int:
    """Return how many calls of ``op`` take about ``target`` seconds (at least 1)."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            op()
        if time.perf_counter() - start >= target or n >= 1 << 20:
            return n
        n *= 2


def _rate(op: Callable[[], object], batch: int, seconds: float) -> float:
    """Call ``op`` in batches for about ``seconds``; return calls per second."""
    ops = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            op()
        ops += batch
        now = time.perf_counter()
        if now >= deadline:
            return ops / (now - start)


def measure(
    subject: Callable[[], object],
    floor: Callable[[], object],
    *,
    seconds: float,
    rounds: int = 5,
    progress: Callable[[int], None] | None = None,
) -> Measurement:
    """Time ``subject`` beside ``floor``, interleaved, for about ``seconds`` in all.

    Each round runs one side then the other for ``seconds / (2 * rounds)``,
    alternating which goes first, so a change in the machine's load falls on
    both alike.

    Args:
        subject: One operation of the thing measured (e.g. ``store.next_out``).
        floor: One operation of its raw floor.
        seconds: The total time to spend, both sides and all rounds.
        rounds: How many rounds (at least 1).
        progress: Called with the round number (from 1) as each round starts.

    Returns:
        The medians and their ratio (median subject ops/s / median floor ops/s; a
        median of per-round ratios could read below 1 while the subject's median
        beats the floor's).
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    chunk = seconds / (2 * rounds)
    batches = {id(subject): _batch(subject), id(floor): _batch(floor)}
    subject_rates: list[float] = []
    floor_rates: list[float] = []
    for round_no in range(rounds):
        if progress is not None:
            progress(round_no + 1)
        order = (subject, floor) if round_no % 2 == 0 else (floor, subject)
        for op in order:
            rate = _rate(op, batches[id(op)], chunk)
            (subject_rates if op is subject else floor_rates).append(rate)
    ops_per_s = statistics.median(subject_rates)
    floor_ops_per_s = statistics.median(floor_rates)
    return Measurement(
        ops_per_s=ops_per_s,
        floor_ops_per_s=floor_ops_per_s,
        ratio=ops_per_s / floor_ops_per_s,  # each rate counts at least one whole batch
        rounds=rounds,
    )


def filesystem_of(path: str) -> str:
    """Return the type of the file system holding ``path`` ("ext4", "tmpfs"...), or "unknown"."""
    try:
        target = os.path.realpath(path)
        best, fstype = "", "unknown"
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                # /proc/mounts escapes spaces and the like as octal (\040).
                point = fields[1].encode().decode("unicode_escape")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, fstype = point, fields[2]
        return fstype
    except OSError:
        return "unknown"


def machine(directory: str) -> dict[str, object]:
    """Describe the machine and the directory a figure was measured in."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "directory": directory,
        "filesystem": filesystem_of(directory),
    }


REPORT_WIDTH = 100  # columns the plain ``fixseq bench`` report keeps within


def _label(row: dict[str, object], directory: str) -> str:
    """A row's store as the table shows it: a path inside ``directory`` by its file name."""
    url = str(row["url"])
    scheme, _, rest = url.partition(":")
    path, mark, query = rest.partition("?")
    prefix = urllib.parse.quote(os.path.abspath(directory)) + "/"
    if scheme in ("file", "sqlite") and path.startswith(prefix):
        url = f"{scheme}:{posixpath.basename(path)}{mark}{query}"
    return url + (f" [{row['load']}]" if "load" in row else "")


def report_table(rows: list[dict[str, object]], directory: str) -> list[str]:
    """The plain report's table lines, within `REPORT_WIDTH` columns where the cells allow.

    Stores under ``directory`` (printed above the table) show by file name; a
    store label still too long for its column goes on a line of its own, with
    its numbers on the next line.
    """
    headers = ["store", "ops/s", "raw floor", "ops/s", "ratio"]
    cells = [
        [
            _label(r, directory),
            f"{r['ops_per_s']:,.0f}",
            str(r["floor"]),
            f"{r['floor_ops_per_s']:,.0f}",
            f"{r['ratio']:.2f}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    rest = sum(widths[1:]) + 2 * (len(widths) - 1)
    widths[0] = max(len(headers[0]), min(widths[0], REPORT_WIDTH - rest))

    def line(row: list[str]) -> str:
        padded = [
            cell.ljust(width) if i in (0, 2) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    for row in cells:
        if len(row[0]) > widths[0]:
            out.append(row[0])
            row = ["", *row[1:]]
        out.append(line(row))
    return out
