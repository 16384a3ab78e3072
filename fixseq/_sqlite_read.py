"""The SQLite store's read-only side: what ``fixseq show`` and ``sessions`` read.

Nothing here opens a store: the database is opened read-only, read in one
transaction and closed, so these work for a user who may only read the file and
never change it (no write, no journal-mode change, no table or row made, no
-wal or -shm file left behind; see :func:`fixseq._sqlite_db.connect_read_only`).
"""

from __future__ import annotations

import datetime
import sqlite3
from typing import TYPE_CHECKING

from ._rules import check_session_name
from ._sqlite_db import (
    DEFAULT_BUSY_TIMEOUT,
    Boundary,
    check_counters,
    check_existing,
    check_path,
    check_schema,
    connect_read_only,
    parse_created,
    read_only_error,
    rollback,
    show,
)
from .errors import CorruptStoreError, SeqStoreError

if TYPE_CHECKING:
    import os

__all__ = ["list_sessions", "read_session_states"]

_State = tuple[int, int, datetime.datetime]


def list_sessions(path: str | os.PathLike[str]) -> list[str]:
    """Return the names of the sessions a SQLite database holds, sorted.

    Reads only (see :func:`read_session_states`): it works on a database the
    user may only read, and creates, writes and leaves behind nothing.

    Args:
        path: The database file.

    Returns:
        The session names (sorted by code point); ``[]`` for a database
        without fixseq's table.

    Raises:
        TypeError: ``path`` is not a str or ``os.PathLike[str]``.
        ValueError: ``path`` is empty.
        SeqStoreError: ``path`` does not exist (nothing is created) or is a
            dangling symbolic link, or the database was made by a newer format
            version.
        CorruptStoreError: The file is empty (0 bytes), is not a SQLite
            database or is damaged, or has a ``fixseq_sessions`` table fixseq
            did not make.
        StoreLockedError: The database stayed locked too long.
        StoreIOError: The file cannot be read.
    """
    db, rows = _read(path, None, "session")
    return sorted(_name(db, row[0]) for row in rows)


def read_session_states(
    path: str | os.PathLike[str], session: str | None = None
) -> list[tuple[str, _State]]:
    """Read sessions' counters without opening a store: what ``fixseq show`` prints.

    The database is opened read-only (``mode=ro``; a WAL database that no
    connection has open is read as ``immutable=1``, so no -wal or -shm file is
    made): no write, no journal-mode change, no table or row created. So it
    works for a user who may only read the file, and while engines use it.

    Args:
        path: The database file.
        session: One session's name, or ``None`` for every session.

    Returns:
        ``(name, (next_out, next_in, created))`` for each session, sorted by name.

    Raises:
        SeqStoreError: As :func:`list_sessions`; also ``session`` is given and
            the database has no such session (or no fixseq table).
        CorruptStoreError: As :func:`list_sessions`; also a row holds values
            out of range.
        StoreLockedError: As :func:`list_sessions`.
        StoreIOError: As :func:`list_sessions`.
    """
    if session is not None:
        session = check_session_name(session)
    db, rows = _read(path, session, "session, last_out, last_in, created")
    found: list[tuple[str, _State]] = []
    for name, last_out, last_in, created in rows:
        name = _name(db, name)
        next_out, next_in = check_counters(db, name, last_out, last_in)
        found.append((name, (next_out, next_in, parse_created(created, db, name))))
    return sorted(found, key=lambda item: item[0])


def _name(db: str, name: object) -> str:
    if not isinstance(name, str):
        raise CorruptStoreError(f"SQLite database {db}: fixseq_sessions holds a non-text name")
    return name


def _read(
    path: str | os.PathLike[str], session: str | None, columns: str
) -> tuple[str, list[tuple[object, ...]]]:
    """Open the database read-only and return its path and the rows of one read."""
    db = check_path(path)
    boundary = Boundary(db, DEFAULT_BUSY_TIMEOUT)
    with boundary:
        if not check_existing(db):
            raise SeqStoreError(f"SQLite database {db} does not exist")
        try:
            conn = connect_read_only(db, DEFAULT_BUSY_TIMEOUT)
            try:
                rows = _read_rows(conn.cursor(), db, session, columns)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            clear = read_only_error(exc, db)
            if clear is not None:
                raise clear from exc
            raise
    return db, rows


def _read_rows(
    cur: sqlite3.Cursor, db: str, session: str | None, columns: str
) -> list[tuple[object, ...]]:
    """The rows of one read transaction: every session, or the one asked for."""
    cur.execute("BEGIN")
    try:
        if not check_schema(cur, db, create=False):
            if session is not None:
                raise SeqStoreError(f"SQLite database {db} has no fixseq sessions")
            return []
        query = f"SELECT {columns} FROM fixseq_sessions"  # columns: constant text
        if session is None:
            return cur.execute(query).fetchall()
        rows = cur.execute(query + " WHERE session = ?1", (session,)).fetchall()
        if not rows:
            raise SeqStoreError(f"SQLite database {db} has no session {show(session)}")
        return rows
    finally:
        rollback(cur.connection)  # read only: nothing to commit
