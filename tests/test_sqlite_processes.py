"""SqliteSeqStore across processes: exactly-once numbers, a monotonic mark, SIGKILL safety."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

from fixseq import SqliteSeqStore

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

CHILD = str(Path(__file__).with_name("_sqlite_children.py"))
SESSION = "FIX.4.4:BANK->BROKER"


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a child in one of the modes of tests/_sqlite_children.py."""
    return subprocess.Popen(
        [sys.executable, CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_together(children: list[subprocess.Popen[str]]) -> list[str]:
    """Wait until every child is ready, start them at once, return each one's last line."""
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = []
    for child in children:
        out, _ = child.communicate(timeout=240)
        assert child.returncode == 0, out
        outputs.append(out.strip().splitlines()[-1])
    return outputs


def test_four_processes_hand_out_each_number_exactly_once(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    # The database does not exist yet: the four children also race to create it.
    db = str(tmp_path / "seq.db")
    children = [start(["hammer", db, SESSION, "2000", "FULL"], child_env) for _ in range(4)]
    results = [json.loads(line) for line in run_together(children)]
    for numbers in results:
        assert numbers == sorted(numbers)  # each process sees its own numbers rise
    handed_out = sorted(n for numbers in results for n in numbers)
    assert handed_out == list(range(1, 8001))
    with SqliteSeqStore(db, SESSION, create=False) as store:
        assert store.peek_out() == 8001


def test_concurrent_observed_in_from_processes_ends_at_max_plus_one(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    db = str(tmp_path / "seq.db")
    SqliteSeqStore(db, SESSION).close()
    rng = random.Random(5)
    values = list(range(1, 1201))
    rng.shuffle(values)  # arrival order is not number order: the mark must still only rise
    shares = [values[i::4] for i in range(4)]
    children = [start(["observe", db, SESSION, json.dumps(share)], child_env) for share in shares]
    reports = [json.loads(line) for line in run_together(children)]
    assert [report["violations"] for report in reports] == [[], [], [], []]
    with SqliteSeqStore(db, SESSION, create=False) as store:
        assert store.current_in() == 1201
        assert store.peek_out() == 1  # the outbound counter was not touched


class Zygote:
    """The parent's side of the crash harness's fork server."""

    def __init__(self, db: str, env: dict[str, str]) -> None:
        self.proc = start(["zygote", db, SESSION], env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[str] = self.proc.stdin
        self.stdout: IO[str] = self.proc.stdout

    def send(self, line: str) -> None:
        self.stdin.write(line + "\n")
        self.stdin.flush()

    def lines(self) -> Iterator[list[str]]:
        while True:
            line = self.stdout.readline()
            assert line, "the crash harness's fork server died"
            words = line.split(maxsplit=1)
            assert words[0] != "error", line
            yield words

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=60)
        self.stdout.close()


@pytest.mark.parametrize(
    ("cycles", "writers"),
    [
        pytest.param(120, 1, id="120-kills-one-writer"),
        pytest.param(60, 2, id="60-kills-two-writers"),
        pytest.param(3000, 1, marks=pytest.mark.slow, id="soak-one-writer"),
        pytest.param(1500, 2, marks=pytest.mark.slow, id="soak-two-writers"),
    ],
)
def test_sigkill_at_random_points_never_reuses_or_regresses(
    tmp_path: Path, child_env: dict[str, str], cycles: int, writers: int
) -> None:
    """SIGKILL writers at random progress, again and again; each reopen shows every acked change.

    A worker reports a number only after next_out() returned it ("o N") and an
    inbound mark only after observed_in() returned ("i N"), having announced the
    attempt first ("t N"). The parent kills every worker after a random number of
    those lines (sometimes before one even opened the store), then reopens and
    checks: the next outbound number is above every acknowledged one and at most
    one per worker past what was acknowledged or seen before (the calls in
    flight); the inbound mark is at or above
    every acknowledged one and never beyond the last attempt. With two writers on
    the session the kills also land while the other holds the write lock.
    """
    db = str(tmp_path / "crash.db")
    SqliteSeqStore(db, SESSION).close()
    rng = random.Random(2026 + writers)
    zygote = Zygote(db, child_env)
    acked_out: list[int] = []
    max_in_acked = 0
    max_in_tried = 0
    last_next_out = 1

    def record(words: list[str]) -> int:
        nonlocal max_in_acked, max_in_tried
        if words[0] == "o":
            acked_out.append(int(words[1]))
            return 1
        if words[0] == "t":
            max_in_tried = max(max_in_tried, int(words[1]))
        elif words[0] == "i":
            max_in_acked = max(max_in_acked, int(words[1]))
            return 1
        return 0

    try:
        for cycle in range(cycles):
            zygote.send(f"go {cycle} {writers}")
            pids: list[int] = []
            progress = 0
            kill_after = rng.choice([-1, 0, 1, 2, 5, 10, 20, 40])
            lines = zygote.lines()
            for words in lines:
                if words[0] == "pid":
                    pids.append(int(words[1]))
                progress += record(words)
                if len(pids) == writers and progress > kill_after:
                    break
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            zygote.send("reap")
            for words in lines:  # lines the workers wrote before they died count too
                if words[0] == "reaped":
                    break
                if words[0] == "dead":
                    assert os.WIFSIGNALED(int(words[1])), words
                record(words)
            with SqliteSeqStore(db, SESSION, create=False) as store:
                next_out, next_in = store.snapshot()
            # Numbers this cycle handed out start at the last reopen's next_out; all but
            # the calls in flight (one per worker) were acknowledged.
            top = max(acked_out, default=0)
            assert top + 1 <= next_out <= max(top + 1, last_next_out) + writers, (
                cycle,
                top,
                last_next_out,
                next_out,
            )
            last_next_out = next_out
            assert max_in_acked + 1 <= next_in <= max(max_in_tried, max_in_acked) + 1, cycle
            if cycle % 20 == 19:
                with contextlib.closing(sqlite3.connect(db)) as conn:
                    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        zygote.close()
    assert len(acked_out) == len(set(acked_out)), "a number was handed out twice"
    assert len(acked_out) > cycles * 2  # the workers made real progress between kills
