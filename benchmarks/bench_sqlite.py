"""SQLite figures: SqliteSeqStore.next_out beside a bare sqlite3 loop, and shared use.

Run from the repository root: ``python -m benchmarks.bench_sqlite [--rounds N] [--json PATH]``.

The raw floor is the least a durable SQLite counter can do: a bare sqlite3
connection with the store's pragmas (WAL, synchronous=FULL, fullfsync, no
implicit transactions) running ``BEGIN IMMEDIATE``, one ``UPDATE ...
RETURNING`` and ``COMMIT`` per number, on a table of the same shape, in the
same directory. Target (issue 5): next_out at least 0.8x the floor's rate,
that is at most 1.25x its time per number.

Also measured against the same floor (no target; they show what sharing costs
or gains): 4 threads on one store, 4 threads with a store each, and 4
processes with a store each, all on one session of one file.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks._harness import Bench, Pair, parse_args, run_pairs
from fixseq import SqliteSeqStore

SESSION = "FIX.4.4:BANK->BROKER"


def bare_connection(path: str) -> sqlite3.Connection:
    """A plain sqlite3 connection set up as the store sets up its own."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in (
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA fullfsync = ON",
        "PRAGMA checkpoint_fullfsync = ON",
    ):
        conn.execute(pragma)
    # A row of the same shape as the store's: name, two counters, creation time.
    conn.execute(
        "CREATE TABLE IF NOT EXISTS seq (session TEXT NOT NULL PRIMARY KEY, "
        "last_out INTEGER NOT NULL, last_in INTEGER NOT NULL, created TEXT NOT NULL) "
        "WITHOUT ROWID"
    )
    conn.execute(
        "INSERT OR IGNORE INTO seq VALUES (?, 0, 0, '2026-01-01T00:00:00.000000+00:00')",
        (SESSION,),
    )
    return conn


def bare_bench(path: str) -> Bench:
    conn = bare_connection(path)
    cur = conn.cursor()
    sql = (
        "UPDATE seq SET last_out = last_out + 1 WHERE session = ? "
        "RETURNING last_out, last_in, created"
    )
    params = (SESSION,)

    def run(n: int) -> None:
        execute = cur.execute
        for _ in range(n):
            execute("BEGIN IMMEDIATE")
            execute(sql, params).fetchall()
            execute("COMMIT")

    return Bench("bare sqlite3: BEGIN IMMEDIATE, UPDATE ... RETURNING, COMMIT", run)


def store_bench(path: str) -> Bench:
    store = SqliteSeqStore(path, SESSION)

    def run(n: int) -> None:
        next_out = store.next_out
        for _ in range(n):
            next_out()

    return Bench("SqliteSeqStore.next_out (WAL, FULL)", run)


def threads_bench(name: str, stores: list[SqliteSeqStore]) -> Bench:
    """Four threads at once, each taking n numbers from its store (maybe the same one)."""

    def run(n: int) -> float:
        start = threading.Barrier(len(stores) + 1)

        def work(store: SqliteSeqStore) -> None:
            start.wait()
            for _ in range(n):
                store.next_out()

        threads = [threading.Thread(target=work, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        return time.perf_counter() - began

    return Bench(name, run, ops_per_call=len(stores))


class Workers:
    """Four processes, each with its own store on the session, taking numbers on command."""

    def __init__(self, path: str, count: int) -> None:
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bench_sqlite", "--child", path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=root,
            )
            for _ in range(count)
        ]
        for proc in self.procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def run(self, n: int) -> float:
        began = time.perf_counter()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{n}\n")
            proc.stdin.flush()
        for proc in self.procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "done"
        return time.perf_counter() - began

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def child(path: str) -> None:
    """A worker process: take n numbers for every line n on stdin."""
    with SqliteSeqStore(path, SESSION, busy_timeout=120) as store:
        print("ready", flush=True)
        for line in sys.stdin:
            for _ in range(int(line)):
                store.next_out()
            print("done", flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    args = parse_args(__doc__ or "")
    with tempfile.TemporaryDirectory(prefix="fixseq-bench-") as tmp:
        bare = bare_bench(os.path.join(tmp, "bare.db"))
        single = store_bench(os.path.join(tmp, "single.db"))
        shared_path = os.path.join(tmp, "shared.db")
        one_store = SqliteSeqStore(shared_path, SESSION)
        own_stores = [SqliteSeqStore(shared_path, SESSION) for _ in range(4)]
        workers = Workers(shared_path, 4)
        try:
            pairs = [
                Pair(single, bare, max_time_ratio=1.25, target=">= 0.8x bare (<= 1.25x time)"),
                Pair(threads_bench("4 threads, one shared store", [one_store] * 4), bare),
                Pair(threads_bench("4 threads, a store (connection) each", own_stores), bare),
                Pair(Bench("4 processes, a store each", workers.run, ops_per_call=4), bare),
            ]
            run_pairs(
                pairs,
                title="SQLite store, one session (aggregate ops/s; floor: one bare connection)",
                rounds=args.rounds,
                seconds=args.seconds,
                json_path=args.json,
            )
        finally:
            workers.close()
            one_store.close()
            for store in own_stores:
                store.close()


if __name__ == "__main__":
    main()
