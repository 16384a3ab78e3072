"""Helpers for the PostgreSQL tests: the server's address, unique names, an admin connection.

The tests need a real server whose libpq connection string is in FIXSEQ_PG_DSN. Without it they
skip locally, with the command that provides one, and fail under CI (a missing server there is a
broken CI job, not a reason to pass).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]

RUN_HINT = (
    "PostgreSQL tests need a server in FIXSEQ_PG_DSN; start a throw-away one and run them with: "
    "bash scripts/pg-test-server.sh run .venv/bin/python -m pytest tests/test_postgres*.py"
)


def require_dsn() -> str:
    """The test server's connection string; skip (locally) or fail (under CI) without one."""
    dsn = os.environ.get("FIXSEQ_PG_DSN")
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail("CI sets up a PostgreSQL server, but FIXSEQ_PG_DSN is not set. " + RUN_HINT)
        pytest.skip(RUN_HINT)
    host = conninfo_to_dict(dsn).get("host")
    # The tests kill connections and restart servers: never anything but a local server.
    assert host in ("127.0.0.1", "localhost", "::1") or str(host).startswith("/"), host
    return dsn


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses: valid as a table name too."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def with_app_name(dsn: str, app: str) -> str:
    """The same server, with an application_name to find the connection in pg_stat_activity."""
    return make_conninfo(dsn, application_name=app)


@contextmanager
def admin(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A separate autocommit connection for setting things up and looking behind the store."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def drop_table(dsn: str, table: str) -> None:
    schema, _, name = table.rpartition(".")
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    with admin(dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))


def table_exists(dsn: str, table: str) -> bool:
    schema, _, name = table.rpartition(".")
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    with admin(dsn) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (ident.as_string(conn),))
        return bool(row.fetchone()[0])  # type: ignore[index]


def row_of(dsn: str, table: str, session: str) -> tuple[int, int] | None:
    """(last_out, last_in) as the server holds them, read past the store."""
    schema, _, name = table.rpartition(".")
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    with admin(dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT last_out, last_in FROM {} WHERE session = %s").format(ident),
            (session,),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def terminate(dsn: str, app: str) -> int:
    """pg_terminate_backend every connection named ``app``; return how many were signalled."""
    with admin(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (app,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def can_restart() -> bool:
    return bool(os.environ.get("FIXSEQ_PG_DATA"))


def restart_server() -> None:
    """Crash the test server (pg_ctl -m immediate) and start it again: WAL recovery runs."""
    subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "pg-test-server.sh"), "restart"],
        check=True,
        timeout=120,
    )
