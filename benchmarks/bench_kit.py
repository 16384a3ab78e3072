"""The kit's second level on FileSeqStore with default parameters: how long it takes.

Run from the repository root: ``python -m benchmarks.bench_kit [--rounds N]``.

Target (issue 11): the damage group (``damage_sample=1024``) and the power-cut
check (``steps=200``, ``max_states=1000``) on ``FileSeqStore(fsync=True)``
finish in under 60 s together. Beside them, in the same rounds (interleaved),
the floor: as many plain open + read + close cycles of an undamaged store
file as the damage group reopens damaged ones, so the table shows what the
kit adds to the store's own cost.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import tempfile
import time

from fixseq import FileSeqStore
from fixseq.testing import check_power_cut, check_seq_store
from fixseq.testing._damage import damages


def damage_run(directory: str) -> None:
    counter = itertools.count()

    def make() -> FileSeqStore:
        return FileSeqStore(os.path.join(directory, f"d{next(counter)}.seq"))

    def reopen(store: FileSeqStore) -> FileSeqStore:
        store.close()
        return FileSeqStore(store.path, create=False)

    check_seq_store(make, reopen=reopen, files=lambda s: [s.path], groups={"damage"})


def power_cut_run(directory: str) -> None:
    check_power_cut(lambda d: FileSeqStore(os.path.join(d, "s.seq")), directory=directory)


def floor_run(directory: str) -> int:
    path = os.path.join(directory, "floor.seq")
    FileSeqStore(path).close()
    with open(path, "rb") as file:
        count = sum(1 for _ in damages(file.read(), 1024))
    for _ in range(count):
        store = FileSeqStore(path, create=False)
        store.peek_out()
        store.current_in()
        store.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # The store logs a warning for each damaged slot it survives: thousands here.
    logging.getLogger("fixseq").setLevel(logging.ERROR)
    times: dict[str, list[float]] = {"damage": [], "power_cut": [], "floor": [], "total": []}
    reopens = 0
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            damage_run(directory)
            middle = time.perf_counter()
            power_cut_run(directory)
            end = time.perf_counter()
            reopens = floor_run(directory)
            floor_end = time.perf_counter()
        times["damage"].append(middle - start)
        times["power_cut"].append(end - middle)
        times["total"].append(end - start)
        times["floor"].append(floor_end - end)
    print(f"FileSeqStore(fsync=True), default parameters, {args.rounds} rounds (median, s)")
    print(f"{'check':<34}{'median s':>10}{'min s':>10}{'max s':>10}")
    rows = [
        ("damage group (files=)", "damage"),
        ("check_power_cut", "power_cut"),
        ("both (target < 60 s)", "total"),
        (f"floor: {reopens} plain reopens", "floor"),
    ]
    for label, key in rows:
        values = times[key]
        print(
            f"{label:<34}{statistics.median(values):>10.2f}{min(values):>10.2f}{max(values):>10.2f}"
        )
    ratio = statistics.median(d / f for d, f in zip(times["damage"], times["floor"], strict=True))
    print(f"damage group / floor (median of per-round ratios): {ratio:.2f}x")


if __name__ == "__main__":
    main()
