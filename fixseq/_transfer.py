"""One atomic, checked change of a whole session on any store kind (import, copy, a due reset).

``replace_state(spec, decide)`` reads the destination's session under the
store's own exclusion (a file store's lock, a SQLite ``BEGIN IMMEDIATE``, a
PostgreSQL ``SELECT ... FOR UPDATE``), asks ``decide`` what it should become,
and writes both counters and the creation time in one step:

* file: a complete new image (the file store's format, both slots holding the
  state) written to a temporary file, synced, then renamed over the old file
  while its lock is held, or linked into place when there was none;
* SQLite: one transaction that creates fixseq's tables if missing and
  inserts or updates the row;
* PostgreSQL: one transaction on the row (the table is created first if missing,
  which holds no session).

A crash leaves the old state or the new one, never a mix, and never a session
at 1 that the operator did not ask for. ``decide`` may raise to refuse; it
may be called twice (a missing SQLite database is checked before it is made).
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import os
import secrets
import sqlite3
import zlib
from typing import TYPE_CHECKING, Any

from . import _fileformat as fmt
from . import _sqlite_db as db
from ._file import read_file_state
from ._protocols import MAX_SEQ_NUM
from ._urls import SessionInfo, StoreURL, read_sessions
from .errors import SeqStoreError, StoreIOError, StoreLockedError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NewState", "replace_state"]

_UTC = datetime.timezone.utc
_BUSY_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class NewState:
    """What a session becomes.

    Attributes:
        next_out: The next outbound MsgSeqNum, 1..MAX_SEQ_NUM.
        next_in: The next expected inbound MsgSeqNum, 1..MAX_SEQ_NUM.
        created: The creation time to keep, or ``None`` for now (the server's
            clock on PostgreSQL, as a reset there uses).
    """

    next_out: int
    next_in: int
    created: datetime.datetime | None = None


def replace_state(
    spec: StoreURL, decide: Callable[[SessionInfo | None], NewState | None]
) -> tuple[SessionInfo | None, SessionInfo | None]:
    """Change the session ``spec`` names to what ``decide`` says, atomically.

    Args:
        spec: A parsed file, SQLite or PostgreSQL URL (with a session for the latter two).
        decide: Called with the current state (``None``: no store or no such
            session) while other writers are kept out; returns the new state,
            or ``None`` to leave the store alone; raises to refuse.

    Returns:
        ``(before, after)``; ``after`` is ``None`` when nothing was written.

    Raises:
        ValueError: A memory URL (nothing would outlive the command).
        StoreLockedError: A file store held by another process (an engine).
        SeqStoreError: The store's own errors; nothing was changed.
    """
    if spec.kind == "memory":
        raise ValueError(
            "a memory: store ends with the command; name a file, sqlite or postgres URL"
        )
    if spec.kind == "file":
        before, written = _replace_file(spec, decide)
    elif spec.kind == "sqlite":
        before, written = _replace_sqlite(spec, decide)
    else:
        before, written = _replace_postgres(spec, decide)
    if not written:
        return before, None
    after = read_sessions(spec)[0]
    return before, after


def _check(state: NewState) -> NewState:
    for name in ("next_out", "next_in"):
        value = getattr(state, name)
        if not isinstance(value, int) or not 1 <= value <= MAX_SEQ_NUM:
            raise ValueError(f"{name} must be in 1..{MAX_SEQ_NUM}, got {value!r}")
    return state


def _now() -> datetime.datetime:
    return datetime.datetime.now(_UTC)


# -- file -----------------------------------------------------------------------------


def _image(session: str | None, state: NewState) -> bytes:
    """A whole file store image whose two slots both hold ``state``."""
    header = fmt.encode_header(b"" if session is None else session.encode("utf-8"))
    seed = zlib.crc32(header[:-4])
    created = fmt.micros(state.created or _now())
    limit = min(state.next_out, MAX_SEQ_NUM)  # last_out + 1: the usual headroom of one
    slots = [
        fmt.encode_slot(seed, generation, state.next_out, state.next_in, created, limit)
        for generation in (0, 1)
    ]
    return b"".join(page.ljust(fmt.PAGE_SIZE, b"\0") for page in (header, *slots))


def _sync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: str, image: bytes) -> str:
    directory, base = os.path.split(os.path.abspath(path))
    temp = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.fixseq-tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, image)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


def _lock_existing(path: str) -> int | None:
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLockedError(
            f"{path} is held by another process (a running engine?): stop it first"
        ) from None
    return fd


def _replace_file(
    spec: StoreURL, decide: Callable[[SessionInfo | None], NewState | None]
) -> tuple[SessionInfo | None, bool]:
    assert spec.path is not None
    path = spec.path
    lock = _lock_existing(path)
    try:
        before = None
        session = spec.session
        if lock is not None:
            found = read_file_state(path)
            if spec.session is not None and found.session != spec.session:
                held = "no session name" if found.session is None else repr(found.session)
                raise SeqStoreError(
                    f"{path} holds {held}, not session {spec.session!r}: two sessions must "
                    "never share one file"
                )
            session = found.session
            before = SessionInfo(found.session, *found.state, found.created)
        state = decide(before)
        if state is None:
            return before, False
        image = _image(session, _check(state))
        fmt.parse(image, path)  # our own image must read back, or nothing is written
        try:
            temp = _write_temp(path, image)
            try:
                if lock is not None:
                    os.rename(temp, path)  # we hold the old file's lock: nobody writes it
                else:
                    try:
                        os.link(temp, path)  # never replaces a store created meanwhile
                    except FileExistsError:
                        raise SeqStoreError(
                            f"{path} was created by another process meanwhile; nothing "
                            "was written: run the command again"
                        ) from None
                    os.unlink(temp)
            except BaseException:
                if os.path.lexists(temp):
                    os.unlink(temp)
                raise
            _sync_dir(os.path.dirname(os.path.abspath(path)))
        except OSError as exc:
            raise StoreIOError(
                exc.errno or errno.EIO, f"could not write {path}: {exc.strerror}"
            ) from exc
        return before, True
    finally:
        if lock is not None:
            os.close(lock)


# -- SQLite ---------------------------------------------------------------------------


def _replace_sqlite(
    spec: StoreURL, decide: Callable[[SessionInfo | None], NewState | None]
) -> tuple[SessionInfo | None, bool]:
    assert spec.path is not None and spec.session is not None
    path, session = spec.path, spec.session
    created_file = False
    if not os.path.exists(path):
        if decide(None) is None:
            return None, False
        db.create_file(os.path.abspath(path))
        created_file = True
    conn = db.connect(path, writable=True, busy_timeout=_BUSY_TIMEOUT)
    try:
        cur = conn.cursor()
        cur.execute("PRAGMA synchronous = FULL")
        if created_file:
            db.set_wal(cur, _BUSY_TIMEOUT)  # as the store would: WAL from the first commit
        cur.execute("BEGIN IMMEDIATE")
        db.check_schema(cur, path, create=True)
        row = cur.execute(db.SELECT, (session,)).fetchone()
        before = None
        if row is not None:
            created = db.parse_created(row[2], path, session)
            before = SessionInfo(session, int(row[0]) + 1, int(row[1]) + 1, created)
        state = decide(before)
        if state is None:
            db.rollback(conn)
            return before, False
        _check(state)
        values = (
            session,
            state.next_out - 1,
            state.next_in - 1,
            db.format_created(state.created or _now()),
        )
        if row is None:
            cur.execute(db.INSERT_SESSION, values)
        else:
            cur.execute(
                "UPDATE fixseq_sessions SET last_out = ?2, last_in = ?3, created = ?4 "
                "WHERE session = ?1",
                values,
            )
        cur.execute("COMMIT")
        return before, True
    except sqlite3.Error as exc:
        db.rollback(conn)
        raise db.translate(exc, path, _BUSY_TIMEOUT) from exc
    except BaseException:
        db.rollback(conn)
        raise
    finally:
        conn.close()


# -- PostgreSQL -----------------------------------------------------------------------


def _table_ident(table: str | None) -> Any:
    from psycopg import sql

    parts = (table or "fixseq_sessions").split(".")
    return sql.Identifier(*parts)


def _replace_postgres(
    spec: StoreURL, decide: Callable[[SessionInfo | None], NewState | None]
) -> tuple[SessionInfo | None, bool]:
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        raise ImportError(
            "postgresql: URLs need the extra: pip install 'fixseq[postgres]'"
        ) from None
    from . import postgres

    assert spec.conninfo is not None and spec.session is not None
    table = spec.table or "fixseq_sessions"
    ident = _table_ident(table)
    try:
        with psycopg.connect(spec.conninfo) as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (ident.as_string(conn),)).fetchone()
            if exists is None or exists[0] is None:
                conn.rollback()
                if decide(None) is None:
                    return None, False
                postgres.create_schema(spec.conninfo, table=table)
            row = conn.execute(
                sql.SQL(
                    "SELECT last_out, last_in, created_at FROM {t} WHERE session = %s FOR UPDATE"
                ).format(t=ident),
                (spec.session,),
            ).fetchone()
            before = None
            if row is not None:
                before = SessionInfo(
                    spec.session, int(row[0]) + 1, int(row[1]) + 1, row[2].astimezone(_UTC)
                )
            state = decide(before)
            if state is None:
                conn.rollback()
                return before, False
            _check(state)
            params = (state.next_out - 1, state.next_in - 1, state.created, spec.session)
            if row is None:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {t} (last_out, last_in, created_at, session) "
                        "VALUES (%s, %s, COALESCE(%s::timestamptz, clock_timestamp()), %s)"
                    ).format(t=ident),
                    params,
                )
            else:
                conn.execute(
                    sql.SQL(
                        "UPDATE {t} SET last_out = %s, last_in = %s, "
                        "created_at = COALESCE(%s::timestamptz, clock_timestamp()) "
                        "WHERE session = %s"
                    ).format(t=ident),
                    params,
                )
            conn.commit()
            return before, True
    except psycopg.Error as exc:
        raise SeqStoreError(f"PostgreSQL refused the change, nothing was changed: {exc}") from exc
