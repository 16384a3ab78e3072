"""Child processes for the SQLite store's multi-process and crash tests.

Run as ``python tests/_sqlite_children.py MODE ...`` with the ``child_env``
fixture's environment. Every mode reports on stdout, one line at a time,
written with a single ``os.write`` (atomic on a pipe) so a SIGKILL never leaves
half a line.

Modes:
    hammer DB SESSION N SYNC    print "ready", wait for a line on stdin, call
                                next_out() N times, print the numbers as JSON.
    observe DB SESSION VALUES   print "ready", wait, call observed_in(v) for each
                                v of the JSON list VALUES, checking after each that
                                current_in() > v and never went down; print a JSON
                                report.
    zygote DB SESSION           the crash harness's fork server: for each "go SEED K"
                                line fork K workers (see ``crash_worker``) and print
                                "pid PID" for each; for "reap" wait for them and
                                print "dead STATUS" for each, then "reaped".
"""

from __future__ import annotations

import json
import os
import random
import sys

from fixseq import SqliteSeqStore


def say(line: str) -> None:
    """Write one whole line to stdout in one system call."""
    os.write(1, (line + "\n").encode())


def hammer(db: str, session: str, count: int, synchronous: str) -> None:
    """Open, wait for the start signal, then take ``count`` outbound numbers."""
    with SqliteSeqStore(db, session, synchronous=synchronous, busy_timeout=60) as store:
        say("ready")
        sys.stdin.readline()
        numbers = [store.next_out() for _ in range(count)]
    say(json.dumps(numbers))


def observe(db: str, session: str, values: list[int]) -> None:
    """Raise the inbound mark with ``values`` (any order), checking it never goes down."""
    violations: list[str] = []
    with SqliteSeqStore(db, session, busy_timeout=60) as store:
        say("ready")
        sys.stdin.readline()
        last = store.current_in()
        for value in values:
            store.observed_in(value)
            now = store.current_in()
            if now <= value or now < last:
                violations.append(f"observed_in({value}) then current_in() = {now}, was {last}")
            last = now
    say(json.dumps({"violations": violations, "last": last}))


def crash_worker(db: str, session: str, seed: int) -> None:
    """Take numbers until killed, reporting each one only after the store returned it.

    "o N": next_out() returned N. "t N": about to call observed_in(N).
    "i N": observed_in(N) returned.
    """
    rng = random.Random(seed)
    store = SqliteSeqStore(db, session, create=False)
    say("opened")
    while True:
        say(f"o {store.next_out()}")
        if rng.random() < 0.5:
            seq_num = store.current_in() + rng.randrange(0, 3)
            say(f"t {seq_num}")
            store.observed_in(seq_num)
            say(f"i {seq_num}")


def zygote(db: str, session: str) -> None:
    """Fork crash workers on command: fork is fast, a new interpreter is not."""
    pids: list[int] = []
    for line in sys.stdin:
        command = line.split()
        if command[0] == "go":
            for index in range(int(command[2])):
                pid = os.fork()
                if pid == 0:  # a worker: never returns into the loop above
                    try:
                        crash_worker(db, session, int(command[1]) * 100 + index)
                    except BaseException as exc:
                        say(f"error {exc!r}")
                    finally:
                        os._exit(1)
                pids.append(pid)
                say(f"pid {pid}")
        elif command[0] == "reap":
            for pid in pids:
                _, status = os.waitpid(pid, 0)
                say(f"dead {status}")
            pids.clear()
            say("reaped")


def main(argv: list[str]) -> None:
    """Dispatch on the mode named by the first argument."""
    mode, db, session, *rest = argv
    if mode == "hammer":
        hammer(db, session, int(rest[0]), rest[1])
    elif mode == "observe":
        observe(db, session, json.loads(rest[0]))
    elif mode == "zygote":
        zygote(db, session)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
