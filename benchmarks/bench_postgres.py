"""PostgreSQL figures: PostgresSeqStore.next_out beside a bare psycopg loop, same server, same run.

The floor is the least a client can do for the same guarantee: one autocommit connection per
thread, running the store's own statement (``UPDATE ... SET last_out = last_out + 1 ...
RETURNING ...``) through a reused cursor, each call one server commit. The subject is the store
doing that through the core (lock, validation, error translation, reconnect check). With 8
threads, each thread has its own store (or bare connection): first all on the same session row
(several engine processes sharing one session: the row lock serialises their commits), then each
on a session of its own (an engine with many sessions: the server's WAL flush serves the commits
that arrive together). The async rows compare the twin (one worker-thread hop per call) with the
sync store; they have no target.

Run from the repository root against a throw-away server::

    bash scripts/pg-test-server.sh run .venv/bin/python -m benchmarks.bench_postgres

or with ``FIXSEQ_PG_DSN`` (or ``--dsn``) naming a server: it creates, and drops at the end, a
table of its own. Targets (issue 6): at least 0.8x the bare loop's throughput, with 1 and 8
threads (that is, at most 1.25x its time per operation).

Group commit and reservation (issue 10), against the single-thread store: 8 threads on ONE
store (one session, one connection), whose concurrent calls become one ``last_out = last_out
+ k`` statement per round trip (target: an aggregate at least 3x the single-thread rate, that
is at most 0.33x its time per number); and one thread with ``reserve=100`` (no target).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
from psycopg import sql

from benchmarks._harness import Bench, Pair, run_pairs
from fixseq.postgres import PostgresSeqStore, create_schema

if TYPE_CHECKING:
    from collections.abc import Callable


def in_threads(workers: list[Callable[[int], None]], n: int) -> float:
    """Run each worker(n) in its own thread, released together; return the seconds taken."""
    barrier = threading.Barrier(len(workers) + 1)

    def body(work: Callable[[int], None]) -> None:
        barrier.wait()
        work(n)

    threads = [threading.Thread(target=body, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


class Setup:
    """A table of the benchmark's own, and connections and stores that live across rounds."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.table = f"fixseq_bench_{uuid.uuid4().hex[:8]}"
        create_schema(dsn, table=self.table)
        self.closers: list[Callable[[], object]] = []

    def store(self, session: str, reserve: int = 1) -> PostgresSeqStore:
        store = PostgresSeqStore(self.dsn, session, table=self.table, reserve=reserve)
        self.closers.append(store.close)
        return store

    def bare(self, session: str) -> Callable[[int], None]:
        """The floor: the store's statement on one autocommit connection, cursor reused."""
        query = self.store(session)._queries.next_out  # exactly the store's statement
        conn: psycopg.Connection[Any] = psycopg.connect(self.dsn, autocommit=True)
        self.closers.append(conn.close)
        cur = conn.cursor()

        params = (1, session, 1)  # advance by 1

        def run(n: int) -> None:
            for _ in range(n):
                cur.execute(query, params)
                cur.fetchone()

        return run

    def subject(self, session: str, reserve: int = 1) -> Callable[[int], None]:
        next_out = self.store(session, reserve).next_out

        def run(n: int) -> None:
            for _ in range(n):
                next_out()

        return run

    def close(self) -> None:
        for close in self.closers:
            close()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table)))


def threaded(name: str, workers: list[Callable[[int], None]]) -> Bench:
    return Bench(name, lambda n: in_threads(workers, n), ops_per_call=len(workers))


def async_bench(setup: Setup, session: str, backend: str) -> Bench:
    store = setup.store(session).as_async()

    def run(n: int) -> float:
        async def loop() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await store.next_out()
            return time.perf_counter() - start

        return anyio.run(loop, backend=backend)

    return Bench(f"AsyncPostgresSeqStore.next_out ({backend})", run)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("FIXSEQ_PG_DSN"),
        help="libpq connection string (default: $FIXSEQ_PG_DSN)",
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="threads for the concurrent rows (default 8)"
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if not args.dsn:
        sys.exit(
            "no server: set FIXSEQ_PG_DSN or pass --dsn, or run\n"
            "  bash scripts/pg-test-server.sh run .venv/bin/python -m benchmarks.bench_postgres"
        )
    setup = Setup(args.dsn)
    try:
        k = args.threads
        sync_one = Bench("PostgresSeqStore.next_out, 1 thread", setup.subject("one"))
        group_store = setup.subject("group")
        pairs = [
            Pair(
                sync_one,
                Bench("bare psycopg autocommit, 1 thread", setup.bare("one-bare")),
                max_time_ratio=1.25,
                target=">= 0.8x bare",
            ),
            Pair(
                threaded(
                    f"PostgresSeqStore.next_out, {k} threads x 1 store each, 1 session",
                    [setup.subject("many") for _ in range(k)],
                ),
                threaded(
                    f"bare psycopg autocommit, {k} threads x 1 connection each, 1 session",
                    [setup.bare("many-bare") for _ in range(k)],
                ),
                max_time_ratio=1.25,
                target=">= 0.8x bare",
            ),
            Pair(
                threaded(
                    f"PostgresSeqStore.next_out, {k} threads x 1 store each, {k} sessions",
                    [setup.subject(f"own-{i}") for i in range(k)],
                ),
                threaded(
                    f"bare psycopg autocommit, {k} threads x 1 connection each, {k} sessions",
                    [setup.bare(f"own-bare-{i}") for i in range(k)],
                ),
                max_time_ratio=1.25,
                target=">= 0.8x bare",
            ),
            Pair(
                threaded(
                    f"PostgresSeqStore.next_out, {k} threads on ONE store (group commit)",
                    [group_store] * k,
                ),
                sync_one,
                max_time_ratio=1 / 3,
                target=">= 3x 1 thread",
            ),
            Pair(
                Bench("PostgresSeqStore.next_out, 1 thread, reserve=100", setup.subject("r", 100)),
                sync_one,
                target="(no target)",
            ),
            Pair(async_bench(setup, "async-asyncio", "asyncio"), sync_one, target="(no target)"),
            Pair(async_bench(setup, "async-trio", "trio"), sync_one, target="(no target)"),
        ]
        run_pairs(
            pairs,
            title="fixseq PostgreSQL store (ops/s = server commits/s)",
            rounds=args.rounds,
            seconds=args.seconds,
            json_path=args.json,
        )
    finally:
        setup.close()


if __name__ == "__main__":
    main()
