"""Several processes and threads on one PostgreSQL session: each number once, no regression."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
from postgres_support import drop_table, require_dsn, unique

from fixseq import SeqState
from fixseq.postgres import PostgresSeqStore, create_schema

if TYPE_CHECKING:
    from collections.abc import Iterator

PROCESSES = 4
CALLS = 2_000

# A child: open the store, say "ready", wait for "go" on stdin (so all start together), then
# run its calls and print what it got. The server's address comes in the environment.
NEXT_OUT_CHILD = """
import os, sys
from fixseq.postgres import PostgresSeqStore
table, session, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
with PostgresSeqStore(os.environ["FIXSEQ_PG_DSN"], session, table=table) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    got = [store.next_out() for _ in range(calls)]
print(" ".join(map(str, got)), flush=True)
"""

OBSERVED_IN_CHILD = """
import os, sys
from fixseq.postgres import PostgresSeqStore
table, session, start, stop, step = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
with PostgresSeqStore(os.environ["FIXSEQ_PG_DSN"], session, table=table) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for seq in range(start, stop, step):
        store.observed_in(seq)
        # Whatever the others did meanwhile, the mark is never below what this one recorded.
        mark = store.current_in()
        if mark < seq + 1:
            raise SystemExit(f"regressed: observed_in({seq}) then current_in() == {mark}")
print("done", flush=True)
"""


@pytest.fixture
def dsn() -> str:
    return require_dsn()


@pytest.fixture
def table(dsn: str) -> Iterator[str]:
    name = unique("fixseq_t")
    create_schema(dsn, table=name)
    yield name
    drop_table(dsn, name)


def run_together(child_env: dict[str, str], code: str, argvs: list[list[str]]) -> list[str]:
    """Start one child per argv, release them at once, return each one's last output line."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0, out
            outputs.append(out.strip().splitlines()[-1])
        return outputs
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def test_processes_share_one_outbound_counter_exactly(
    dsn: str, table: str, child_env: dict[str, str]
) -> None:
    session = unique("procs")
    outputs = run_together(
        child_env, NEXT_OUT_CHILD, [[table, session, str(CALLS)] for _ in range(PROCESSES)]
    )
    got = [[int(n) for n in line.split()] for line in outputs]
    for numbers in got:
        assert len(numbers) == CALLS
        assert numbers == sorted(numbers)  # each process sees its own numbers rising
    every = sorted(n for numbers in got for n in numbers)
    assert every == list(range(1, PROCESSES * CALLS + 1))  # each number once, none lost
    with PostgresSeqStore(dsn, session, table=table) as store:
        assert store.peek_out() == PROCESSES * CALLS + 1


def test_processes_raise_the_inbound_mark_to_the_max(
    dsn: str, table: str, child_env: dict[str, str]
) -> None:
    session = unique("inbound")
    top = 2_000
    # Interleaved numbers: process k records k+1, k+1+P, ...; the others race it all the way.
    argvs = [[table, session, str(k + 1), str(top + 1), str(PROCESSES)] for k in range(PROCESSES)]
    assert run_together(child_env, OBSERVED_IN_CHILD, argvs) == ["done"] * PROCESSES
    with PostgresSeqStore(dsn, session, table=table) as store:
        assert store.snapshot() == SeqState(1, top + 1)


def test_threads_share_one_store(dsn: str, table: str) -> None:
    threads, calls = 8, 150
    got: list[list[int]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)
    with PostgresSeqStore(dsn, "threads", table=table) as store:

        def work(i: int) -> None:
            barrier.wait()
            got[i].extend(store.next_out() for _ in range(calls))

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not any(worker.is_alive() for worker in workers)
        assert sorted(n for numbers in got for n in numbers) == list(range(1, threads * calls + 1))
