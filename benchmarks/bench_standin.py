"""A stand-in for ``fixseq bench --json``, for the docs chart until the command lands.

Usage::

    python benchmarks/bench_standin.py --seconds 2 > benchmarks/results/bench.json
    python benchmarks/chart.py

It prints the same JSON document as ``fixseq bench --json`` (``{"seconds", "machine",
"results": [{"url", "ops_per_s", "floor", "floor_ops_per_s", "ratio"}]}``), measured the same
way: each store's ``next_out()`` beside its raw floor (a bare lock-guarded increment, a bare
32-byte ``pwrite`` with and without ``fdatasync``, a bare sqlite3 ``BEGIN IMMEDIATE`` /
``UPDATE ... RETURNING`` / ``COMMIT`` in WAL mode), in rounds that alternate which side goes
first, reporting medians and the median per-round ratio. Each store available in the imported
``fixseq`` is measured: the memory store always, the file and SQLite stores once they are in
the package. Once ``fixseq bench --json`` exists, use it instead and delete this script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fixseq

import fixseq

Op = Callable[[], object]


def _batch(op: Op, target: float = 0.002) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            op()
        if time.perf_counter() - start >= target or n >= 1 << 20:
            return n
        n *= 2


def _rate(op: Op, batch: int, seconds: float) -> float:
    ops = 0
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            op()
        ops += batch
        now = time.perf_counter()
        if now - start >= seconds:
            return ops / (now - start)


def measure(store: Op, floor: Op, seconds: float, rounds: int = 5) -> tuple[float, float, float]:
    """Interleaved rounds; return (median store ops/s, median floor ops/s, median ratio)."""
    chunk = seconds / (2 * rounds)
    batches = {id(store): _batch(store), id(floor): _batch(floor)}
    rates: dict[int, list[float]] = {id(store): [], id(floor): []}
    for round_no in range(rounds):
        for op in (store, floor) if round_no % 2 == 0 else (floor, store):
            rates[id(op)].append(_rate(op, batches[id(op)], chunk))
    ratios = [s / f for s, f in zip(rates[id(store)], rates[id(floor)], strict=True)]
    return (
        statistics.median(rates[id(store)]),
        statistics.median(rates[id(floor)]),
        statistics.median(ratios),
    )


@contextlib.contextmanager
def lock_floor() -> Iterator[tuple[str, Op]]:
    lock = threading.Lock()
    counter = [1]

    def op() -> int:
        with lock:
            value = counter[0]
            counter[0] = value + 1
            return value

    yield "lock-guarded increment", op


@contextlib.contextmanager
def pwrite_floor(directory: str, sync: bool) -> Iterator[tuple[str, Op]]:
    fd, path = tempfile.mkstemp(prefix="floor-", dir=directory)
    os.write(fd, bytes(4096))
    os.fsync(fd)
    payload, turn = bytes(32), [0]

    def op() -> None:
        turn[0] ^= 1
        os.pwrite(fd, payload, 64 * (1 + turn[0]))
        if sync:
            os.fdatasync(fd)

    try:
        yield ("pwrite 32 B + fdatasync" if sync else "pwrite 32 B (no sync)"), op
    finally:
        os.close(fd)
        os.unlink(path)


@contextlib.contextmanager
def sqlite_floor(directory: str) -> Iterator[tuple[str, Op]]:
    conn = sqlite3.connect(os.path.join(directory, "floor.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, last_out INTEGER NOT NULL)")
    conn.execute("INSERT INTO floor VALUES (1, 0)")
    update = "UPDATE floor SET last_out = last_out + 1 WHERE id = 1 RETURNING last_out"

    def op() -> object:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(update).fetchone()
        conn.execute("COMMIT")
        return row

    try:
        yield "sqlite3 UPDATE+COMMIT (WAL, FULL)", op
    finally:
        conn.close()


def filesystem_of(path: str) -> str:
    best, fstype = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) >= 3 and (path + "/").startswith(fields[1].rstrip("/") + "/"):
                if len(fields[1]) >= len(best):
                    best, fstype = fields[1], fields[2]
    return fstype


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per store, both sides")
    parser.add_argument(
        "--dir", default=None, help="where to put scratch files (default: a temp dir)"
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fixseq-bench-", dir=args.dir) as directory:
        directory = os.path.realpath(directory)
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            ("memory:", lambda: fixseq.MemorySeqStore(), lock_floor),
        ]
        file_store = getattr(fixseq, "FileSeqStore", None)
        if file_store is not None:
            path = os.path.join(directory, "bench.seq")
            cases.append(
                (f"file:{path}", lambda: file_store(path), lambda: pwrite_floor(directory, True))
            )
            path0 = os.path.join(directory, "bench-nosync.seq")
            cases.append(
                (
                    f"file:{path0}?fsync=0",
                    lambda: file_store(path0, fsync=False),
                    lambda: pwrite_floor(directory, False),
                )
            )
        sqlite_store = getattr(fixseq, "SqliteSeqStore", None)
        if sqlite_store is not None:
            db = os.path.join(directory, "bench.db")
            cases.append(
                (
                    f"sqlite:///{db}?session=bench",
                    lambda: sqlite_store(db, "bench"),
                    lambda: sqlite_floor(directory),
                )
            )
        for url, open_store, open_floor in cases:
            print(f"measuring {url} ...", file=sys.stderr)
            with open_store() as store, open_floor() as (floor_name, floor):
                ops, floor_ops, ratio = measure(store.next_out, floor, args.seconds)
            results.append(
                {
                    "url": url,
                    "ops_per_s": round(ops, 1),
                    "floor": floor_name,
                    "floor_ops_per_s": round(floor_ops, 1),
                    "ratio": round(ratio, 3),
                }
            )
        machine = {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "sqlite": sqlite3.sqlite_version,
            "directory": directory,
            "filesystem": filesystem_of(directory),
        }
    json.dump(
        {"seconds": args.seconds, "machine": machine, "results": results}, sys.stdout, indent=2
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
