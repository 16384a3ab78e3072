"""next_out with reserve=100 against reserve=1 on SQLite and PostgreSQL, interleaved.

Since a store holding a reserved block asks the backend per number whether the
row moved (a live ``fixseq set`` / ``reset``), reserve=K saves the commit of
each number, not every backend call. Run::

    python -m benchmarks.bench_reserve_live DIR [POSTGRES_DSN]

Each round measures every store once, in turn, so drift on a shared machine
hits every row alike; the table shows the median calls per second.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from typing import TYPE_CHECKING

from fixseq import SqliteSeqStore
from fixseq import postgres as pg

if TYPE_CHECKING:
    from collections.abc import Callable

    from fixseq import SeqCounters

ROUNDS, CALLS = 5, 400


def rate(store: SeqCounters) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        store.next_out()
    return CALLS / (time.perf_counter() - start)


def main(directory: str, dsn: str | None) -> None:
    db = os.path.join(directory, "bench.db")
    openers: dict[str, Callable[[], SeqCounters]] = {
        "sqlite reserve=1": lambda: SqliteSeqStore(db, "s1"),
        "sqlite reserve=100": lambda: SqliteSeqStore(db, "s100", reserve=100),
    }
    table = f"fixseq_bench_{uuid.uuid4().hex[:8]}"
    if dsn:
        pg.create_schema(dsn, table=table)
        openers["postgres reserve=1"] = lambda: pg.PostgresSeqStore(dsn, "s1", table=table)
        openers["postgres reserve=100"] = lambda: pg.PostgresSeqStore(
            dsn, "s100", table=table, reserve=100
        )
    stores = {name: open_() for name, open_ in openers.items()}
    rates: dict[str, list[float]] = {name: [] for name in stores}
    try:
        for _ in range(ROUNDS):
            for name, store in stores.items():
                rates[name].append(rate(store))
    finally:
        for store in stores.values():
            store.close()
        if dsn:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP TABLE {table}")  # a name made above, not input
    print(f"{'store':<22} {'next_out/s':>12}  (median of {ROUNDS} rounds of {CALLS})")
    for name, values in rates.items():
        print(f"{name:<22} {statistics.median(values):>12,.0f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else os.environ.get("FIXSEQ_PG_DSN"))
