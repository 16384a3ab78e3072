"""The PostgreSQL SIGKILL harness's fork server (run with the ``child_env`` environment).

``python tests/_postgres_children.py DSN TABLE SESSION`` reads commands on stdin: for
"go SEED THREADS RESERVE" it forks one worker (see ``worker``) and prints "pid PID"; for
"reap" it waits for it and prints "dead STATUS" and then "reaped". Every line is written with
one ``os.write`` (atomic on a pipe), so a SIGKILL never leaves half a line. The server only
imports psycopg: each worker connects after the fork.
"""

from __future__ import annotations

import os
import random
import sys
import threading

from fixseq.postgres import PostgresSeqStore


def say(line: str) -> None:
    """Write one whole line to stdout in one system call."""
    os.write(1, (line + "\n").encode())


def worker(dsn: str, table: str, session: str, seed: int, threads: int, reserve: int) -> None:
    """Take numbers from ``threads`` threads until killed, reporting each after it returned.

    "o N": next_out() returned N. "t N": about to call observed_in(N). "i N": it returned.
    """
    store = PostgresSeqStore(dsn, session, table=table, create=False, reserve=reserve)
    say("opened")

    def loop(rng: random.Random) -> None:
        while True:
            say(f"o {store.next_out()}")
            if rng.random() < 0.5:
                seq_num = store.current_in() + rng.randrange(0, 3)
                say(f"t {seq_num}")
                store.observed_in(seq_num)
                say(f"i {seq_num}")

    for index in range(1, threads):
        threading.Thread(target=loop, args=(random.Random(seed * 1000 + index),)).start()
    loop(random.Random(seed))


def main(dsn: str, table: str, session: str) -> None:
    """Fork a worker on each "go" line; reap it on "reap"."""
    pid = 0
    for line in sys.stdin:
        command = line.split()
        if command[0] == "go":
            seed, threads, reserve = map(int, command[1:4])
            pid = os.fork()
            if pid == 0:  # the worker: never returns into this loop
                try:
                    worker(dsn, table, session, seed, threads, reserve)
                except BaseException as exc:
                    say(f"error {exc!r}")
                finally:
                    os._exit(1)
            say(f"pid {pid}")
        elif command[0] == "reap":
            _, status = os.waitpid(pid, 0)
            say(f"dead {status}")
            say("reaped")


if __name__ == "__main__":
    main(*sys.argv[1:4])
