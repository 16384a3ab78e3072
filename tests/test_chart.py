"""benchmarks/chart.py draws the docs chart and table from ``fixseq bench --json`` output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART = REPO_ROOT / "benchmarks" / "chart.py"

BENCH = {
    "seconds": 2,
    "machine": {"cpus": 2, "python": "3.11.7", "platform": "Linux-test", "filesystem": "ext4"},
    "results": [
        {
            "url": "memory:",
            "ops_per_s": 3_800_000.0,
            "floor": "lock-guarded increment",
            "floor_ops_per_s": 4_100_000.0,
            "ratio": 0.93,
        },
        {
            "url": "file:/tmp/scratch/s.seq?fsync=0",
            "ops_per_s": 420_000.0,
            "floor": "pwrite 32 B (no sync)",
            "floor_ops_per_s": 900_000.0,
            "ratio": 0.47,
        },
    ],
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHART), *args], capture_output=True, text=True, timeout=120
    )


def test_draws_chart_and_table(tmp_path: Path) -> None:
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(BENCH), encoding="utf-8")
    svg, table = tmp_path / "chart.svg", tmp_path / "table.md"
    result = _run(str(source), "-o", str(svg), "--table", str(table))
    assert result.returncode == 0, result.stderr
    drawing = svg.read_text(encoding="utf-8")
    # Each store by its short label, its rate beside its ratio, its floor, and the machine.
    for text in ("memory", "file (fsync=0)", "3.80 M/s", "0.47x floor", "pwrite 32 B (no sync)"):
        assert text in drawing
    assert "Linux-test" in drawing and "2 CPUs" in drawing
    assert "/tmp/scratch" not in drawing  # scratch paths say nothing about speed
    rows = table.read_text(encoding="utf-8")
    assert "| memory | 3,800,000 | lock-guarded increment | 4,100,000 | 0.93 |" in rows
    assert "| file (fsync=0) | 420,000 | pwrite 32 B (no sync) | 900,000 | 0.47 |" in rows
    # The same input gives the same bytes, so a regenerated chart changes nothing in git.
    first = svg.read_bytes()
    assert _run(str(source), "-o", str(svg), "--table", "").returncode == 0
    assert svg.read_bytes() == first


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"machine": {}, "results": []}, "no 'seconds'"),
        ({**BENCH, "results": []}, "'results' must be a non-empty list"),
        ({**BENCH, "results": [{"url": "memory:"}]}, "results[0] has no 'ops_per_s'"),
        (
            {**BENCH, "results": [{**BENCH["results"][0], "ops_per_s": 0}]},  # type: ignore[index]
            "results[0].ops_per_s must be a positive number",
        ),
    ],
)
def test_rejects_malformed_input(tmp_path: Path, document: object, message: str) -> None:
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(document), encoding="utf-8")
    result = _run(str(source), "-o", str(tmp_path / "c.svg"), "--table", "")
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "c.svg").exists()


def test_committed_table_matches_committed_results(tmp_path: Path) -> None:
    # The benchmarks page shows the table chart.py makes from the committed JSON: never edited
    # by hand, never stale.
    table = tmp_path / "table.md"
    result = _run(
        str(REPO_ROOT / "benchmarks" / "results" / "bench.json"),
        "-o",
        str(tmp_path / "c.svg"),
        "--table",
        str(table),
    )
    assert result.returncode == 0, result.stderr
    committed = REPO_ROOT / "benchmarks" / "results" / "bench-table.md"
    assert table.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8")
    # The committed chart was drawn from the same results (its bytes depend on the matplotlib
    # version, so compare what it says: every store's ratio to its floor).
    results = json.loads((REPO_ROOT / "benchmarks" / "results" / "bench.json").read_text())
    drawing = (REPO_ROOT / "docs" / "benchmarks.svg").read_text(encoding="utf-8")
    for row in results["results"]:
        assert f"({row['ratio']:.2f}x floor)" in drawing, row["url"]
