"""SIGKILL at random instants: guarantee 2 (no reuse after a crash), for real.

A launcher process imports fixseq once and forks one worker per cycle (so a
cycle costs a fork, not an interpreter start). The worker opens the store and
takes next_out and observed_in as fast as it can, writing each acknowledged
value to a pipe the test reads. After a random number of acknowledgements the
test SIGKILLs the worker, wherever it is (in a pwrite, in an fdatasync,
between the two, opening or creating the file), drains the pipe, reopens the
store and checks: next_out is above every number ever returned, current_in is
at least every acknowledged observed_in + 1, and no more was skipped than one
change in flight can explain. Kill points come from a seeded random generator;
nothing waits on a timer.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import pytest

from fixseq import FileSeqStore

if TYPE_CHECKING:
    from pathlib import Path

LAUNCHER = r"""
import os, random, sys, threading, traceback
from fixseq import FileSeqStore

out = sys.stdout.fileno()
for line in sys.stdin:
    path, fsync, threads, reserve, seed = line.split()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.write(out, b"pid %d\n" % os.getpid())
            store = FileSeqStore(path, fsync=fsync == "1", reserve=int(reserve))
            os.write(out, b"open\n")

            def work(rng):
                for _ in range(100_000):
                    if rng.random() < 0.7:
                        os.write(out, b"o %d\n" % store.next_out())
                    else:
                        seq = store.current_in() + rng.randrange(3)
                        store.observed_in(seq)
                        os.write(out, b"i %d\n" % seq)

            workers = [
                threading.Thread(target=work, args=(random.Random(f"{seed}/{i}"),))
                for i in range(int(threads))
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            os.write(out, b"finished\n")
        except BaseException:
            os.write(out, b"error " + traceback.format_exc().replace("\n", " | ").encode() + b"\n")
            code = 1
        os._exit(code)
    os.waitpid(pid, 0)
    os.write(out, b"done\n")
"""


@dataclass
class Config:
    fsync: bool
    threads: int = 1
    reserve: int = 1

    @property
    def name(self) -> str:
        return f"fsync={self.fsync} threads={self.threads} reserve={self.reserve}"


class Harness:
    """Drives the launcher: one forked worker per cycle, killed after ``kills_after`` acks."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout

    def cycle(self, path: Path, config: Config, seed: int, kill_after: int) -> tuple[int, int]:
        """Run one worker, kill it after ``kill_after`` acks; return (max out, max in) acked."""
        command = f"{path} {int(config.fsync)} {config.threads} {config.reserve} {seed}\n"
        self.stdin.write(command.encode())
        self.stdin.flush()
        first = self.stdout.readline().split()
        assert first[:1] == [b"pid"], first
        pid = int(first[1])
        max_out = max_in = 0
        acks = 0
        killed = False
        if kill_after == 0:
            os.kill(pid, signal.SIGKILL)  # while it opens (or creates) the file
            killed = True
        while True:
            line = self.stdout.readline()
            assert line, "the launcher died"
            kind, _, value = line.strip().partition(b" ")
            if kind == b"done":
                break
            assert kind not in (b"error", b"finished"), line.decode(errors="replace")
            if kind == b"o":
                max_out = max(max_out, int(value))
                acks += 1
            elif kind == b"i":
                max_in = max(max_in, int(value))
                acks += 1
            if not killed and acks >= kill_after:
                os.kill(pid, signal.SIGKILL)
                killed = True
        assert killed
        return max_out, max_in

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=60)
        self.stdout.close()


@pytest.fixture
def harness(child_env: dict[str, str]) -> Harness:
    return Harness(child_env)


def run_cycles(harness: Harness, tmp_path: Path, config: Config, cycles: int, seed: int) -> None:
    rng = random.Random(seed)
    max_acks = 60 if config.fsync else 400
    path = tmp_path / "long.seq"
    ever_out = 0  # every number ever returned is below the reopened next_out
    ever_in = 0
    fresh = 0
    try:
        for cycle in range(cycles):
            where = f"{config.name}, cycle {cycle}"
            if cycle % 10 == 5:
                # A fresh file, killed at once: a crash during creation must never
                # leave a file that does not open, nor block the next creation.
                fresh += 1
                new = tmp_path / f"fresh{fresh}.seq"
                harness.cycle(new, config, rng.getrandbits(32), 0)
                if new.exists():
                    with FileSeqStore(new, create=False) as store:
                        assert store.snapshot() == (1, 1), where
                harness.cycle(new, config, rng.getrandbits(32), rng.randint(1, 20))
                with FileSeqStore(new, create=False) as store:
                    assert store.peek_out() >= 1
                continue
            with FileSeqStore(path) as store:
                start = store.snapshot()
            kill_after = rng.choice([0, rng.randint(1, max_acks)])
            acked_out, acked_in = harness.cycle(path, config, rng.getrandbits(32), kill_after)
            ever_out, ever_in = max(ever_out, acked_out), max(ever_in, acked_in)
            with FileSeqStore(path) as store:
                state = store.snapshot()
            assert state.next_out > ever_out, f"reused a number: {state} after {ever_out}, {where}"
            assert state.next_in > ever_in, f"lost an inbound: {state} after {ever_in}, {where}"
            if config.threads == 1:
                # At most one change was in flight when the kill came.
                lower = max(start.next_out, acked_out + 1)
                assert state.next_out <= lower + config.reserve, f"{state} > {lower}, {where}"
    finally:
        harness.close()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".fixseq-tmp")]
    for name in leftovers:  # a crash mid-creation may leave one; it never blocked anything
        assert name.startswith(".fresh"), name


CONFIGS = [
    pytest.param(Config(fsync=True), 150, id="fsync"),
    pytest.param(Config(fsync=False), 150, id="nofsync"),
    pytest.param(Config(fsync=True, threads=4), 40, id="fsync-4-threads"),
    pytest.param(Config(fsync=False, threads=4), 40, id="nofsync-4-threads"),
    pytest.param(Config(fsync=True, reserve=8), 30, id="fsync-reserve-8"),
]


@pytest.mark.parametrize(("config", "cycles"), CONFIGS)
def test_sigkill_at_random_instants_never_reuses_or_loses_a_number(
    harness: Harness, tmp_path: Path, config: Config, cycles: int
) -> None:
    run_cycles(harness, tmp_path, config, cycles, seed=zlib.crc32(config.name.encode()))


@pytest.mark.slow
@pytest.mark.parametrize("fsync", [True, False], ids=["fsync", "nofsync"])
def test_sigkill_soak(harness: Harness, tmp_path: Path, fsync: bool) -> None:
    run_cycles(harness, tmp_path, Config(fsync=fsync), 3000, seed=int(fsync))
