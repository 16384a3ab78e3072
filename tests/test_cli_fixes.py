"""The fixseq command's fixes from issue 15 (items 5, 12, 13, 17, 18, 19), as a subprocess."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from fixseq import _bench

if TYPE_CHECKING:
    from pathlib import Path


def _run(
    env: dict[str, str],
    cwd: Path,
    *args: str,
    code: int | None = 0,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "fixseq", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={k: v for k, v in env.items() if k != "FIXSEQ_URL"},
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fixseq: error: "), proc.stderr
    return lines[0]


# -- item 5: set and reset create nothing unless --create ------------------------------


def test_set_creates_nothing_without_create(child_env: dict[str, str], tmp_path: Path) -> None:
    # No URL: the default sqlite:fixseq.db is not made in the working directory.
    _error_line(_run(child_env, tmp_path, "set", "--next-out", "5", code=1))
    assert list(tmp_path.iterdir()) == []
    _run(child_env, tmp_path, "set", f"file:{tmp_path}/bank.seq", "--next-out", "5", "--create")
    # A typo in the path names the close match in the directory, and creates nothing.
    proc = _run(child_env, tmp_path, "set", f"file:{tmp_path}/bamk.seq", "--next-out", "9", code=1)
    assert "bank.seq" in _error_line(proc) and "--create" in proc.stderr
    proc = _run(child_env, tmp_path, "reset", f"file:{tmp_path}/bamk.seq", "--yes", code=1)
    assert "bank.seq" in _error_line(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.seq"]


def test_session_typo_names_the_session(child_env: dict[str, str], tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path}/fix.db?session="
    right, typo = "FIX.4.4:BANK->BROKER", "FIX.4.4:BANK->BROKR"
    _run(child_env, tmp_path, "set", db + right, "--next-out", "70", "--create")
    for args in (("set", db + typo, "--next-out", "1005"), ("reset", db + typo, "--yes")):
        proc = _run(child_env, tmp_path, *args, code=1)
        assert right in _error_line(proc)
    scheduled = ("reset", db + typo, "--yes", "--if-created-before", "06:00 UTC")
    assert right in _error_line(_run(child_env, tmp_path, *scheduled, code=1))
    assert json.loads(_run(child_env, tmp_path, "sessions", db + right, "--json").stdout)[
        "sessions"
    ] == [right]
    # --create after the other arguments makes the new session on purpose.
    _run(child_env, tmp_path, "set", db + "NEW", "--next-out", "3", "--create")
    _run(child_env, tmp_path, "reset", db + "NEW2", "--yes", "--create")


def test_scheduled_reset_creates_nothing(child_env: dict[str, str], tmp_path: Path) -> None:
    url = f"file:{tmp_path}/bamk.seq"
    proc = _run(
        child_env, tmp_path, "reset", url, "--yes", "--if-created-before", "06:00 UTC", code=1
    )
    _error_line(proc)
    assert list(tmp_path.iterdir()) == []


# -- item 12: reset without a terminal refuses unless --yes ----------------------------


def test_reset_without_a_terminal(child_env: dict[str, str], tmp_path: Path) -> None:
    url = f"file:{tmp_path}/a.seq"
    _run(child_env, tmp_path, "set", url, "--next-out", "50", "--create")
    cases: list[tuple[str, int | None]] = [("devnull", subprocess.DEVNULL), ("pipe", None)]
    for _name, stdin in cases:
        if stdin is None:
            proc = subprocess.run(
                [sys.executable, "-m", "fixseq", "reset", url],
                input="y\n",
                capture_output=True,
                text=True,
                env=child_env,
                timeout=120,
            )
        else:
            proc = _run(child_env, tmp_path, "reset", url, stdin=stdin, code=None)
        assert proc.returncode == 1, proc
        assert "--yes" in _error_line(proc)
    closed = subprocess.run(
        ["sh", "-c", 'exec "$0" -m fixseq reset "$1" 0<&-', sys.executable, url],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=120,
    )
    assert closed.returncode == 1, closed
    assert "--yes" in _error_line(closed)
    shown = json.loads(_run(child_env, tmp_path, "show", url, "--json").stdout)
    assert shown["next_out"] == 50


def test_reset_asks_on_a_terminal(child_env: dict[str, str], tmp_path: Path) -> None:
    url = f"file:{tmp_path}/a.seq"
    _run(child_env, tmp_path, "set", url, "--next-out", "50", "--create")
    for answer, code in ((b"n\n", 1), (b"y\n", 0)):
        controller, terminal = pty.openpty()
        try:
            os.write(controller, answer)
            proc = _run(child_env, tmp_path, "reset", url, stdin=terminal, code=code)
        finally:
            os.close(terminal)
            os.close(controller)
        assert "[y/N]" in proc.stderr
    assert json.loads(_run(child_env, tmp_path, "show", url, "--json").stdout)["next_out"] == 1


# -- item 13: the corrupt store's message gives steps that work ------------------------


def _follow_repair(
    env: dict[str, str], cwd: Path, message: str, session: str | None = None
) -> None:
    found = re.search(
        r"mv (.+?), then (?:for each session, )?(fixseq set .+? --next-in M)", message
    )
    assert found, message
    mv = shlex.split(found.group(1))
    os.rename(mv[0], mv[1])
    command = found.group(2).replace(" N ", " 5321 ").replace(" M", " 4410")
    command = command.replace("?session=NAME", "" if session is None else f"?session={session}")
    words = shlex.split(command)
    assert words[:2] == ["fixseq", "set"]
    _run(env, cwd, *words[1:])


def test_corrupt_file_repair_steps_work(child_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bank.seq"
    url = f"file:{path}"
    _run(child_env, tmp_path, "set", url, "--next-out", "7", "--create")
    path.write_bytes(b"\0" * 100)
    proc = _run(child_env, tmp_path, "set", url, "--next-out", "8", code=1)
    _follow_repair(child_env, tmp_path, _error_line(proc))
    shown = json.loads(_run(child_env, tmp_path, "show", url, "--json").stdout)
    assert (shown["next_out"], shown["next_in"]) == (5321, 4410)
    assert (tmp_path / "bank.seq.damaged").read_bytes() == b"\0" * 100


def test_corrupt_sqlite_repair_steps_work(child_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "fix.db"
    url = f"sqlite:{path}?session=S"
    _run(child_env, tmp_path, "set", url, "--next-out", "7", "--create")
    path.write_bytes(b"x" * 4096)
    proc = _run(child_env, tmp_path, "show", url, code=1)
    _follow_repair(child_env, tmp_path, _error_line(proc), session="S")
    shown = json.loads(_run(child_env, tmp_path, "show", url, "--json").stdout)
    assert (shown["next_out"], shown["next_in"]) == (5321, 4410)


def test_no_message_suggests_a_bare_fixseq_set() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("errors.py", "_file.py", "_fileformat.py", "_sqlite_db.py"):
        with open(os.path.join(root, "fixseq", name), encoding="utf-8") as f:
            text = f.read()
        assert "repair it (``fixseq set``)" not in text, name
        assert "remove it or set the numbers" not in text, name


# -- item 17: bench's ratio and width ---------------------------------------------------


def test_ratio_is_the_ratio_of_the_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    def subject() -> None: ...

    def floor() -> None: ...

    rates = {id(subject): [2.0, 4.0, 100.0], id(floor): [1.0, 8.0, 100.0]}

    def fake_rate(op: object, batch: int, chunk: float) -> float:
        return rates[id(op)].pop(0)

    monkeypatch.setattr(_bench, "_rate", fake_rate)
    result = _bench.measure(subject, floor, seconds=0.01, rounds=3)
    assert (result.ops_per_s, result.floor_ops_per_s) == (4.0, 8.0)
    assert result.ratio == 0.5  # the median per-round ratio would say 1.0


def test_bench_group_fits_100_columns(child_env: dict[str, str], tmp_path: Path) -> None:
    env = {**child_env, "TMPDIR": str(tmp_path)}
    proc = _run(env, tmp_path, "bench", "--group", "--seconds", "0.02")
    lines = proc.stdout.splitlines()
    assert len(lines) > 8
    # The directory line is the one cell as long as the path it names (the tables name
    # stores inside it by file name, so the rest stays narrow whatever TMPDIR is).
    too_wide = [line for line in lines if len(line) > 100 and not line.startswith("directory: ")]
    assert not too_wide, too_wide
    table = lines[lines.index(next(x for x in lines if x.startswith("store"))) + 2 :]
    for row in table:
        cells = re.split(r"\s{2,}", row.strip())
        if len(cells) == 1:
            continue  # a long store label on its own line; its numbers follow
        rate, floor_rate, ratio = (
            float(cells[-4].replace(",", "")),
            float(cells[-2].replace(",", "")),
            float(cells[-1]),
        )
        assert ratio == pytest.approx(rate / floor_rate, rel=0.02, abs=0.006), row


# -- item 18: --json errors print one JSON object on stdout ----------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("show", "file:missing.seq"), 1),
        (("show", "mysql://h/db"), 2),
        (("set", "file:missing.seq", "--next-out", "3"), 1),
        (("set", "file:a.seq", "--next-out", "abc"), 2),
        (("set", "file:a.seq"), 2),
        (("reset", "file:missing.seq", "--yes"), 1),
        (("reset", "file:missing.seq", "--bogus"), 2),
        (("sessions", "sqlite:missing.db"), 1),
        (("sessions", "file:a.seq"), 2),
        (("bench", "--seconds", "0"), 2),
        (("bench", "redis:x"), 2),
    ],
)
def test_json_errors(
    child_env: dict[str, str], tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    proc = _run(child_env, tmp_path, *args, "--json", code=code)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    obj = json.loads(lines[0])
    assert set(obj) == {"error", "exit"} and obj["exit"] == code
    assert isinstance(obj["error"], str) and obj["error"]
    assert proc.stderr.strip().splitlines()[-1].endswith(obj["error"])
    # Without --json, nothing on stdout.
    plain = [a for a in args if a != "--json"]
    assert _run(child_env, tmp_path, *plain, code=code).stdout == ""


# -- item 19: smaller CLI defects --------------------------------------------------------


def test_libpq_rejection_says_bad_store_url_once(child_env: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    url = "postgresql://127.0.0.1/db?session=s&no_such_parameter=1"
    proc = _run(child_env, tmp_path, "show", url, code=2)
    line = proc.stderr.strip().splitlines()[-1]
    assert line.count("bad store URL") == 1, line


def test_demo_engine_is_hidden(child_env: dict[str, str], tmp_path: Path) -> None:
    proc = _run(child_env, tmp_path, "frobnicate", code=2)
    assert "invalid choice" in proc.stderr and "_demo-engine" not in proc.stderr
    assert "_demo-engine" not in _run(child_env, tmp_path, "--help").stdout


@pytest.mark.parametrize("value", ["\uff15", "1_000", "+5", " 5", "٣", "5\n"])
def test_next_out_takes_ascii_digits_only(
    child_env: dict[str, str], tmp_path: Path, value: str
) -> None:
    url = f"file:{tmp_path}/a.seq"
    for option in ("--next-out", "--next-in"):
        proc = _run(child_env, tmp_path, "set", url, option, value, "--create", code=2)
        assert "not an integer" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_docs_site_page(child_env: dict[str, str], tmp_path: Path) -> None:
    text = _run(child_env, tmp_path, "--help").stdout
    assert "docs/operations.md" not in text
    assert "Operations" in text


def test_json_failure_after_its_own_object_prints_one(
    child_env: dict[str, str], tmp_path: Path
) -> None:
    # doctor --json prints its report, then fails on a FAIL: still one object on stdout.
    url = f"file:{tmp_path}/a.seq?fsync=0"
    _run(child_env, tmp_path, "set", url, "--next-out", "3", "--create")
    proc = _run(child_env, tmp_path, "doctor", url, "--json", code=1)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    assert "error" not in json.loads(lines[0])
