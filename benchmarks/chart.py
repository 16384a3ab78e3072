"""Draw the benchmark chart of the docs from ``fixseq bench --json`` output.

Usage::

    fixseq bench --json > benchmarks/results/bench.json
    python benchmarks/chart.py benchmarks/results/bench.json

It writes ``docs/benchmarks.svg`` (ops/s of each store's ``next_out`` beside its raw floor
measured in the same run, on a log scale, with the machine it was measured on) and
``benchmarks/results/bench-table.md`` (the same figures as a Markdown table, which the
benchmarks page includes). The output depends only on the input: no timestamp, fixed SVG ids,
so regenerating from the same JSON changes nothing in git.

Needs matplotlib (the ``docs`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = ROOT / "benchmarks" / "results" / "bench.json"
DEFAULT_CHART = ROOT / "docs" / "benchmarks.svg"
DEFAULT_TABLE = ROOT / "benchmarks" / "results" / "bench-table.md"

STORE_COLOUR = "#1f6fb2"
FLOOR_COLOUR = "#b8b8b8"


@dataclass(frozen=True)
class Row:
    """One measured store: its ``next_out`` rate beside its raw floor's, from one run."""

    url: str
    ops_per_s: float
    floor: str
    floor_ops_per_s: float
    ratio: float
    load: str | None = None  # "16 threads" and the like, on `fixseq bench --group` rows

    @property
    def label(self) -> str:
        """A short name for the chart: the scheme plus the options that change speed.

        Scratch paths and session names are left out: they differ from run to run and say
        nothing about speed.
        """
        scheme, _, rest = self.url.partition(":")
        query = urllib.parse.urlsplit(self.url).query if "?" in rest else ""
        options = [
            f"{key}={value}"
            for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True)
            if key not in ("session", "table")
        ]
        name = f"{scheme} ({', '.join(options)})" if options else scheme
        return f"{name} [{self.load}]" if self.load else name


@dataclass(frozen=True)
class Bench:
    """A whole ``fixseq bench --json`` document."""

    seconds: float
    machine: dict[str, Any]
    rows: list[Row]
    rounds: int | None = None  # interleaved rounds per store, when the run says


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{where} must be a positive number (a log scale needs one), got {value}")
    return number


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a non-empty string")
    return value


def parse(document: object) -> Bench:
    """Check a decoded ``fixseq bench --json`` document and return it as a `Bench`.

    Raises:
        ValueError: A key is missing or a value has the wrong type or is not positive.
    """
    if not isinstance(document, dict):
        raise ValueError("the benchmark JSON must be an object")
    for key in ("seconds", "machine", "results"):
        if key not in document:
            raise ValueError(f"the benchmark JSON has no {key!r}")
    machine = document["machine"]
    if not isinstance(machine, dict):
        raise ValueError("'machine' must be an object")
    results = document["results"]
    if not isinstance(results, list) or not results:
        raise ValueError("'results' must be a non-empty list")
    rows = []
    for index, item in enumerate(results):
        where = f"results[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object")
        missing = [
            k for k in ("url", "ops_per_s", "floor", "floor_ops_per_s", "ratio") if k not in item
        ]
        if missing:
            raise ValueError(f"{where} has no {', '.join(repr(k) for k in missing)}")
        rows.append(
            Row(
                url=_text(item["url"], f"{where}.url"),
                ops_per_s=_number(item["ops_per_s"], f"{where}.ops_per_s"),
                floor=_text(item["floor"], f"{where}.floor"),
                floor_ops_per_s=_number(item["floor_ops_per_s"], f"{where}.floor_ops_per_s"),
                ratio=_number(item["ratio"], f"{where}.ratio"),
                load=_text(item["load"], f"{where}.load") if "load" in item else None,
            )
        )
    rounds = document.get("rounds")
    if rounds is not None and (
        isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1
    ):
        raise ValueError("'rounds' must be a positive integer")
    return Bench(_number(document["seconds"], "seconds"), machine, rows, rounds)


def _run_line(bench: Bench) -> str:
    rounds = f" in {bench.rounds} interleaved rounds" if bench.rounds else ""
    return f"Measured on: {describe_machine(bench.machine)}; {bench.seconds:g} s per store{rounds}."


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M/s"
    if value >= 1e4:
        return f"{value / 1e3:.0f} k/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k/s"
    return f"{value:.0f} /s"


def describe_machine(machine: dict[str, Any]) -> str:
    """One line naming the machine, Python and file system a run was measured on."""
    parts = []
    if "cpus" in machine:
        parts.append(f"{machine['cpus']} CPUs")
    for key, prefix in (
        ("platform", ""),
        ("implementation", ""),
        ("python", ""),
        ("sqlite", "SQLite "),
        ("filesystem", "file system "),
    ):
        if machine.get(key):
            parts.append(f"{prefix}{machine[key]}")
    known = {"cpus", "platform", "implementation", "python", "sqlite", "filesystem", "directory"}
    parts.extend(f"{key} {value}" for key, value in sorted(machine.items()) if key not in known)
    return ", ".join(str(part) for part in parts) or "machine not recorded"


def draw(bench: Bench, out: Path) -> None:
    """Write the chart: each store's ops/s beside its floor's, log scale, machine in the footer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "fixseq-bench",  # stable element ids: same input, same file
            "svg.fonttype": "none",  # text stays text (searchable, small)
            "font.family": "sans-serif",
            "font.size": 10,
        }
    )
    rows = bench.rows
    height = 1.2 + 0.75 * len(rows)
    fig, ax = plt.subplots(figsize=(9.0, height))
    positions = list(range(len(rows)))[::-1]  # the first result on top
    bar = 0.36
    store_y = [p + bar / 2 for p in positions]
    floor_y = [p - bar / 2 for p in positions]
    ax.barh(
        store_y,
        [r.ops_per_s for r in rows],
        height=bar,
        color=STORE_COLOUR,
        label="store next_out()",
    )
    ax.barh(
        floor_y,
        [r.floor_ops_per_s for r in rows],
        height=bar,
        color=FLOOR_COLOUR,
        label="raw floor",
    )
    ax.set_xscale("log")
    low = min(min(r.ops_per_s, r.floor_ops_per_s) for r in rows)
    high = max(max(r.ops_per_s, r.floor_ops_per_s) for r in rows)
    ax.set_xlim(10 ** math.floor(math.log10(low) - 0.3), 10 ** math.ceil(math.log10(high) + 0.9))
    for r, ys, yf in zip(rows, store_y, floor_y, strict=True):
        ax.text(
            r.ops_per_s * 1.08,
            ys,
            f"{_rate(r.ops_per_s)}  ({r.ratio:.2f}x floor)",
            va="center",
            fontsize=8.5,
        )
        ax.text(
            r.floor_ops_per_s * 1.08,
            yf,
            f"{_rate(r.floor_ops_per_s)}  {r.floor}",
            va="center",
            fontsize=8,
            color="#555555",
        )
    ax.set_yticks(positions)
    ax.set_yticklabels([r.label for r in rows])
    ax.set_xlabel("operations per second (log scale; more is better)")
    ax.set_title("next_out() per store beside its raw floor, measured in the same run", fontsize=11)
    ax.grid(axis="x", which="major", color="#e4e4e4")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="lower right", fontsize=8.5, frameon=False)
    fig.text(
        0.01,
        0.01,
        _run_line(bench),
        fontsize=7.5,
        color="#555555",
        ha="left",
        va="bottom",
        wrap=True,
    )
    fig.tight_layout(rect=(0, 0.06 if len(rows) > 2 else 0.1, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Date": None, "Creator": "benchmarks/chart.py"})
    plt.close(fig)


def table(bench: Bench) -> str:
    """The figures as a Markdown table, with the machine under it.

    Stores are named by the same short label as on the chart; the full URLs of the run (scratch
    paths, a redacted password) are in the JSON.
    """
    lines = [
        "| store | next_out ops/s | raw floor | floor ops/s | store / floor |",
        "|---|---:|---|---:|---:|",
    ]
    for r in bench.rows:
        lines.append(
            f"| {r.label} | {r.ops_per_s:,.0f} | {r.floor} | {r.floor_ops_per_s:,.0f} | {r.ratio:.2f} |"
        )
    lines.append("")
    lines.append(_run_line(bench))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Read the JSON, write the chart and the table; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "input",
        nargs="?",
        default=str(DEFAULT_INPUT),
        help="fixseq bench --json output ('-' for stdin)",
    )
    parser.add_argument(
        "-o", "--output", default=str(DEFAULT_CHART), help="the chart to write (.svg or .png)"
    )
    parser.add_argument(
        "--table", default=str(DEFAULT_TABLE), help="the Markdown table to write ('' for none)"
    )
    args = parser.parse_args(argv)
    try:
        text = (
            sys.stdin.read() if args.input == "-" else Path(args.input).read_text(encoding="utf-8")
        )
        bench = parse(json.loads(text))
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        print(f"chart.py: {args.input}: {exc}", file=sys.stderr)
        return 1
    draw(bench, Path(args.output))
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(table(bench), encoding="utf-8")
    print(f"wrote {args.output}" + (f" and {args.table}" if args.table else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
