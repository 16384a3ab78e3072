"""SIGKILL a PostgreSQL store's process mid-run, with threads and with reserve: no reuse, ever."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest
from postgres_support import drop_table, require_dsn, unique

from fixseq.postgres import PostgresSeqStore, create_schema

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

CHILD = str(Path(__file__).with_name("_postgres_children.py"))


@pytest.fixture
def table() -> Iterator[str]:
    dsn = require_dsn()
    name = unique("fixseq_kill")
    create_schema(dsn, table=name)
    yield name
    drop_table(dsn, name)


def lines(stdout: IO[str]) -> Iterator[list[str]]:
    while True:
        line = stdout.readline()
        assert line, "the fork server died"
        words = line.split(maxsplit=1)
        assert words[0] != "error", line
        yield words


@pytest.mark.parametrize(
    ("cycles", "threads", "reserve"),
    [
        pytest.param(30, 8, 1, id="30-kills-eight-threads"),
        pytest.param(30, 1, 8, id="30-kills-reserve-8"),
        pytest.param(30, 4, 8, id="30-kills-four-threads-reserve-8"),
        pytest.param(1000, 8, 8, marks=pytest.mark.slow, id="soak"),
    ],
)
def test_sigkill_at_random_points_never_reuses_or_regresses(
    table: str, child_env: dict[str, str], cycles: int, threads: int, reserve: int
) -> None:
    """Kill the writer after a random number of acknowledged calls, then reopen and check.

    The next outbound number must be above every acknowledged one and at most the calls in
    flight (one per thread) plus the unused block (reserve - 1) past them; the inbound mark
    at or above every acknowledged one and never beyond the last attempt.
    """
    dsn = require_dsn()
    session = unique("s")
    PostgresSeqStore(dsn, session, table=table).close()
    rng = random.Random(7 + threads * 10 + reserve * 100)
    proc = subprocess.Popen(
        [sys.executable, CHILD, dsn, table, session],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    acked_out: list[int] = []
    max_in_acked = max_in_tried = 0
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
            proc.stdin.write(f"go {cycle} {threads} {reserve}\n")
            proc.stdin.flush()
            pid, progress = 0, 0
            kill_after = rng.choice([-1, 0, 1, 2, 5, 10, 20, 40])
            stream = lines(proc.stdout)
            for words in stream:
                if words[0] == "pid":
                    pid = int(words[1])
                progress += record(words)
                if pid and progress > kill_after:
                    break
            os.kill(pid, signal.SIGKILL)
            proc.stdin.write("reap\n")
            proc.stdin.flush()
            for words in stream:  # lines written before the kill count too
                if words[0] == "reaped":
                    break
                if words[0] == "dead":
                    assert os.WIFSIGNALED(int(words[1])), words
                record(words)
            with PostgresSeqStore(dsn, session, table=table, create=False) as store:
                next_out, next_in = store.snapshot()
            top = max(acked_out, default=0)
            slack = threads + reserve - 1
            assert top + 1 <= next_out <= max(top + 1, last_next_out) + slack, (
                cycle,
                top,
                last_next_out,
                next_out,
            )
            last_next_out = next_out
            assert max_in_acked + 1 <= next_in <= max(max_in_tried, max_in_acked) + 1, cycle
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert len(acked_out) == len(set(acked_out)), "a number was handed out twice"
    assert len(acked_out) > cycles * 2  # real progress between kills
