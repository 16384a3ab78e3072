"""PostgreSQL errors say what happened to the call: a read changed nothing, a lone call is no group.

A read (``fixseq show``, ``sessions``, ``list_sessions``, ``snapshot``) that cannot reach the
server changed nothing and must not say that "the change" may have been committed; a write that
lost its connection after sending must. A call that failed alone is named, not "a group of 1
calls". Against a closed port on 127.0.0.1 (nothing listens) and against the real test server.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("psycopg")

from postgres_support import admin, drop_table, require_dsn, terminate, unique, with_app_name
from psycopg import sql
from psycopg.conninfo import make_conninfo

from fixseq import StoreIOError
from fixseq.postgres import PostgresSeqStore, create_schema, list_sessions

if TYPE_CHECKING:
    from collections.abc import Iterator

CLOSED = "host=127.0.0.1 port=1 connect_timeout=5"  # port 1 on loopback: refused at once
WRITE_WORDING = "may or may not have been committed"


@pytest.fixture
def dsn() -> str:
    return require_dsn()


@pytest.fixture
def table(dsn: str) -> Iterator[str]:
    name = unique("fixseq_t")
    create_schema(dsn, table=name)
    yield name
    drop_table(dsn, name)


def test_a_read_that_cannot_connect_says_nothing_changed() -> None:
    for read in (
        lambda: PostgresSeqStore(CLOSED, "s", create=False),
        lambda: list_sessions(CLOSED),
    ):
        with pytest.raises(StoreIOError, match="connection to PostgreSQL failed") as info:
            read()
        text = str(info.value)
        assert WRITE_WORDING not in text and "change is not acknowledged" not in text, text
        assert "nothing" in text and "changed" in text, text
        assert "group of" not in text


def test_an_open_that_could_not_connect_sent_nothing() -> None:
    # create=True would insert a row, but nothing reached a server: nothing can be committed.
    with pytest.raises(StoreIOError, match="before anything was sent") as info:
        PostgresSeqStore(CLOSED, "s")
    assert WRITE_WORDING not in str(info.value)


@pytest.mark.parametrize("command", ["show", "sessions"])
def test_the_cli_read_commands_on_a_closed_port(child_env: dict[str, str], command: str) -> None:
    url = "postgresql://127.0.0.1:1/fixseq?session=s&connect_timeout=5"
    if command == "sessions":
        url = "postgresql://127.0.0.1:1/fixseq?connect_timeout=5"
    proc = subprocess.run(
        [sys.executable, "-m", "fixseq", command, url],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert WRITE_WORDING not in lines[0] and "group of" not in lines[0], lines[0]


def test_a_lone_call_is_named_and_reads_and_writes_are_worded_apart(dsn: str, table: str) -> None:
    app = unique("fixseq_errors")
    with PostgresSeqStore(with_app_name(dsn, app), "s", table=table) as store:
        assert store.next_out() == 1
        assert terminate(dsn, app) == 1
        with pytest.raises(StoreIOError) as info:
            store.snapshot()  # a read: its connection was killed under it
        text = str(info.value)
        assert "group of" not in text and WRITE_WORDING not in text, text
        assert "nothing" in text and "changed" in text, text
        assert "session 's'" in text
        assert store.next_out() == 2  # reconnected
        assert terminate(dsn, app) == 1
        with pytest.raises(StoreIOError) as info:
            store.next_out()  # a write whose fate is unknown: says so, names the call
        text = str(info.value)
        assert "group of" not in text and "next_out" in text, text
        assert WRITE_WORDING in text, text
        assert store.next_out() >= 3  # the lost call may have taken 3: never reused


def test_a_server_side_error_on_a_read_says_nothing_was_read(dsn: str, table: str) -> None:
    impatient = make_conninfo(dsn, options="-c lock_timeout=200")
    with PostgresSeqStore(impatient, "s", table=table) as store, admin(dsn) as locker:
        locker.execute("BEGIN")
        locker.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))
        )
        with pytest.raises(StoreIOError) as info:
            store.snapshot()
        locker.execute("COMMIT")
        text = str(info.value)
        assert "did not apply the change" not in text and "group of" not in text, text
        assert "read" in text, text
