"""A small benchmark harness: a subject and its raw floor, measured interleaved in one run.

These machines are shared and noisy (2 cores), so no figure stands alone: every
subject is measured beside a raw floor (a bare locked increment, a bare
pwrite + fdatasync, ...) in the same process, alternating round by round, and
the table reports medians and the median of the per-round ratios.

Use::

    from benchmarks._harness import Bench, Pair, run_pairs

    pairs = [Pair(subject=Bench("store.next_out", run_store), floor=Bench("bare", run_bare),
                  max_time_ratio=1.3, target="<= 1.3x the bare method")]
    run_pairs(pairs, title="core")

A ``Bench.run(n)`` performs ``n`` operations; it may return the seconds it
measured itself (for multi-threaded runs that exclude their set-up), or None to
be timed from the outside.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Bench", "Pair", "Result", "in_threads", "machine", "parse_args", "run_pairs"]


@dataclass
class Bench:
    """One thing to time: ``run(n)`` performs ``n`` operations."""

    name: str
    run: Callable[[int], float | None]
    ops_per_call: int = 1  # operations one unit of n stands for (e.g. threads x n)


@dataclass
class Pair:
    """A subject measured beside its floor; ``max_time_ratio`` is the target (subject/floor)."""

    subject: Bench
    floor: Bench
    max_time_ratio: float | None = None
    target: str = ""


@dataclass
class Result:
    """Medians of one pair over all rounds."""

    pair: Pair
    subject_ns: list[float] = field(default_factory=list)
    floor_ns: list[float] = field(default_factory=list)

    @property
    def subject_median_ns(self) -> float:
        return statistics.median(self.subject_ns)

    @property
    def floor_median_ns(self) -> float:
        return statistics.median(self.floor_ns)

    @property
    def time_ratio(self) -> float:
        """Median over rounds of subject ns/op divided by floor ns/op (paired)."""
        return statistics.median(s / f for s, f in zip(self.subject_ns, self.floor_ns, strict=True))

    @property
    def met(self) -> bool | None:
        if self.pair.max_time_ratio is None:
            return None
        return self.time_ratio <= self.pair.max_time_ratio

    def as_dict(self) -> dict[str, object]:
        return {
            "subject": self.pair.subject.name,
            "floor": self.pair.floor.name,
            "subject_ns_per_op": round(self.subject_median_ns, 1),
            "floor_ns_per_op": round(self.floor_median_ns, 1),
            "subject_ops_per_s": round(1e9 / self.subject_median_ns),
            "floor_ops_per_s": round(1e9 / self.floor_median_ns),
            "time_ratio": round(self.time_ratio, 3),
            "throughput_ratio": round(1 / self.time_ratio, 3),
            "target": self.pair.target,
            "met": self.met,
        }


def in_threads(op: Callable[[], object], threads: int) -> Callable[[int], float]:
    """A ``Bench.run`` that calls ``op`` ``n`` times on each of ``threads`` threads.

    The threads start together from a barrier; the time returned excludes
    starting them. Give the Bench ``ops_per_call=threads``.
    """

    def run(n: int) -> float:
        start = threading.Barrier(threads + 1)

        def work() -> None:
            start.wait()
            for _ in range(n):
                op()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        start.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
        return time.perf_counter() - began

    return run


def machine() -> dict[str, object]:
    """Describe the machine a figure was measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def _time_once(bench: Bench, n: int) -> float:
    """Return ns per operation for one call of ``bench.run(n)``."""
    start = time.perf_counter()
    measured = bench.run(n)
    elapsed = time.perf_counter() - start if measured is None else measured
    return elapsed * 1e9 / (n * bench.ops_per_call)


def _calibrate(bench: Bench, seconds: float) -> int:
    """Find n so that one round of ``bench`` takes about ``seconds``."""
    n = 1
    while True:
        ns = _time_once(bench, n)
        total = ns * n * bench.ops_per_call / 1e9
        if total >= seconds / 4 or n >= 1 << 30:
            return max(1, int(n * seconds / max(total, 1e-9)))
        n *= 4


def run_pairs(
    pairs: list[Pair],
    *,
    title: str,
    rounds: int = 7,
    seconds: float = 0.3,
    json_path: str | None = None,
) -> list[Result]:
    """Measure every pair interleaved (subject, floor, subject, floor ...) and print a table.

    Each round measures every pair once, alternating which side goes first, so
    drift in the machine's load falls on both sides alike.
    """
    results = [Result(pair) for pair in pairs]
    sizes = {}
    for pair in pairs:
        for bench in (pair.subject, pair.floor):
            if id(bench) not in sizes:
                sizes[id(bench)] = _calibrate(bench, seconds)
    for round_no in range(rounds):
        for result in results:
            pair = result.pair
            order = (pair.subject, pair.floor) if round_no % 2 == 0 else (pair.floor, pair.subject)
            for bench in order:
                ns = _time_once(bench, sizes[id(bench)])
                (result.subject_ns if bench is pair.subject else result.floor_ns).append(ns)
        print(f"  round {round_no + 1}/{rounds} done", file=sys.stderr, flush=True)
    print_table(results, title=title, rounds=rounds)
    if json_path:
        with open(json_path, "w") as out:
            json.dump(
                {
                    "title": title,
                    "rounds": rounds,
                    "machine": machine(),
                    "results": [r.as_dict() for r in results],
                },
                out,
                indent=2,
            )
    return results


def print_table(results: list[Result], *, title: str, rounds: int) -> None:
    """Print the results as a Markdown table."""
    info = machine()
    print(f"\n### {title}: medians of {rounds} interleaved rounds")
    print(f"machine: {info['cpus']} CPUs, {info['platform']}, Python {info['python']}\n")
    print(
        "| subject | ns/op | ops/s | raw floor | ns/op | ops/s | subject/floor time | "
        "throughput vs floor | target | met |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---|---|")
    for r in results:
        met = {None: "-", True: "yes", False: "**no**"}[r.met]
        print(
            f"| {r.pair.subject.name} | {r.subject_median_ns:,.0f} | {1e9 / r.subject_median_ns:,.0f} "
            f"| {r.pair.floor.name} | {r.floor_median_ns:,.0f} | {1e9 / r.floor_median_ns:,.0f} "
            f"| {r.time_ratio:.2f}x | {1 / r.time_ratio:.2f}x | {r.pair.target or '-'} | {met} |"
        )


def parse_args(description: str) -> argparse.Namespace:
    """The options every bench script takes: --rounds, --seconds, --json."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args()
