"""Store URLs: every form of the grammar, every bad URL with its error, and opening each kind."""

from __future__ import annotations

import os
import sys
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest
from url_support import pg_url

import fixseq
from fixseq import (
    AsyncFileSeqStore,
    AsyncMemorySeqStore,
    AsyncSqliteSeqStore,
    FileSeqStore,
    MemorySeqStore,
    SeqStoreError,
    SqliteSeqStore,
    open_async_store,
    open_store,
)
from fixseq._urls import StoreURL, parse_url, redact_url

if TYPE_CHECKING:
    from pathlib import Path


# -- the grammar ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory:", StoreURL("memory:", "memory")),
        ("memory://", StoreURL("memory://", "memory")),
        ("MEMORY:", StoreURL("MEMORY:", "memory")),
        # file: a relative path, an absolute one, the RFC 8089 forms.
        ("file:engine.seq", StoreURL("file:engine.seq", "file", path="engine.seq")),
        ("file:run/a.seq", StoreURL("file:run/a.seq", "file", path="run/a.seq")),
        ("file:/var/fix/a.seq", StoreURL("file:/var/fix/a.seq", "file", path="/var/fix/a.seq")),
        ("file:///var/fix/a.seq", StoreURL("file:///var/fix/a.seq", "file", path="/var/fix/a.seq")),
        (
            "file://localhost/var/a.seq",
            StoreURL("file://localhost/var/a.seq", "file", path="/var/a.seq"),
        ),
        ("file:a.seq?fsync=0", StoreURL("file:a.seq?fsync=0", "file", path="a.seq", fsync=False)),
        ("file:a.seq?fsync=1", StoreURL("file:a.seq?fsync=1", "file", path="a.seq", fsync=True)),
        (
            "file:a.seq?fsync=false&create=0",
            StoreURL(
                "file:a.seq?fsync=false&create=0", "file", path="a.seq", fsync=False, create=False
            ),
        ),
        (
            "file:a.seq?session=FIX.4.4%3ABANK-%3EBROKER",
            StoreURL(
                "file:a.seq?session=FIX.4.4%3ABANK-%3EBROKER",
                "file",
                path="a.seq",
                session="FIX.4.4:BANK->BROKER",
            ),
        ),
        # Percent-decoding only: '+' stays '+', %20 is a space, %2B is '+' too.
        ("file:a+b%20c.seq", StoreURL("file:a+b%20c.seq", "file", path="a+b c.seq")),
        # sqlite: exactly SQLAlchemy's reading, plus sqlite:PATH.
        (
            "sqlite:///fixseq.db?session=S",
            StoreURL("sqlite:///fixseq.db?session=S", "sqlite", path="fixseq.db", session="S"),
        ),
        (
            "sqlite:///run/fixseq.db?session=S",
            StoreURL(
                "sqlite:///run/fixseq.db?session=S", "sqlite", path="run/fixseq.db", session="S"
            ),
        ),
        (
            "sqlite:////var/fix/fixseq.db?session=S",
            StoreURL(
                "sqlite:////var/fix/fixseq.db?session=S",
                "sqlite",
                path="/var/fix/fixseq.db",
                session="S",
            ),
        ),
        (
            "sqlite:fixseq.db?session=S",
            StoreURL("sqlite:fixseq.db?session=S", "sqlite", path="fixseq.db", session="S"),
        ),
        (
            "sqlite:/abs/fixseq.db?session=S",
            StoreURL(
                "sqlite:/abs/fixseq.db?session=S", "sqlite", path="/abs/fixseq.db", session="S"
            ),
        ),
        ("sqlite:fixseq.db", StoreURL("sqlite:fixseq.db", "sqlite", path="fixseq.db")),
        (
            "sqlite:f.db?session=a+b%20c%2Bd&synchronous=normal",
            StoreURL(
                "sqlite:f.db?session=a+b%20c%2Bd&synchronous=normal",
                "sqlite",
                path="f.db",
                session="a+b c+d",
                synchronous="NORMAL",
            ),
        ),
        (
            "sqlite:f.db?create=1&session=%F0%9F%93%88&synchronous=EXTRA",
            StoreURL(
                "sqlite:f.db?create=1&session=%F0%9F%93%88&synchronous=EXTRA",
                "sqlite",
                path="f.db",
                session="\N{CHART WITH UPWARDS TREND}",
                synchronous="EXTRA",
                create=True,
            ),
        ),
        # postgresql: fixseq's parameters taken out, libpq's passed on untouched.
        (
            "postgresql://fix@127.0.0.1:5432/trading?session=S",
            StoreURL(
                "postgresql://fix@127.0.0.1:5432/trading?session=S",
                "postgresql",
                conninfo="postgresql://fix@127.0.0.1:5432/trading",
                session="S",
            ),
        ),
        (
            "postgresql://fix:p%40ss@127.0.0.1/trading?sslmode=disable&session=A%2BB&table=ops"
            ".fix_seq&connect_timeout=3&create=0",
            StoreURL(
                "postgresql://fix:p%40ss@127.0.0.1/trading?sslmode=disable&session=A%2BB"
                "&table=ops.fix_seq&connect_timeout=3&create=0",
                "postgresql",
                conninfo="postgresql://fix:p%40ss@127.0.0.1/trading?sslmode=disable"
                "&connect_timeout=3",
                session="A+B",
                table="ops.fix_seq",
                create=False,
            ),
        ),
        (
            "postgres://127.0.0.1/db?session=S",
            StoreURL(
                "postgres://127.0.0.1/db?session=S",
                "postgresql",
                conninfo="postgresql://127.0.0.1/db",
                session="S",
            ),
        ),
        (
            "postgresql+psycopg://127.0.0.1/db?session=S",
            StoreURL(
                "postgresql+psycopg://127.0.0.1/db?session=S",
                "postgresql",
                conninfo="postgresql://127.0.0.1/db",
                session="S",
            ),
        ),
        (
            "postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql&session=S",
            StoreURL(
                "postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql&session=S",
                "postgresql",
                conninfo="postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql",
                session="S",
            ),
        ),
    ],
)
def test_parse(url: str, expected: StoreURL) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty store URL"),
        ("   ", "empty store URL"),
        ("fixseq.db", "no scheme"),
        ("/var/fix/a.seq", "no scheme"),
        ("mysql://h/db?session=S", "unknown scheme 'mysql'"),
        ("redis:x", "unknown scheme 'redis'"),
        ("postgresql+asyncpg://h/db?session=S", "driver 'asyncpg' is not supported"),
        ("memory:x", "memory: takes no path"),
        ("memory:?session=S", "unknown parameter 'session'"),
        ("file:", "missing path"),
        ("file://", "missing path"),
        ("file:///", "missing path"),
        ("file:?fsync=0", "missing path"),
        ("file://fixhost/a.seq", "not host 'fixhost'"),
        ("file:a.seq?fsync=2", "fsync='2' is not a boolean"),
        ("file:a.seq?fsync=", "fsync='' is not a boolean"),
        ("file:a.seq?create=maybe", "create='maybe' is not a boolean"),
        ("file:a.seq?sync=0", "unknown parameter 'sync'"),
        ("file:a.seq?synchronous=FULL", "unknown parameter 'synchronous'"),
        ("file:a.seq?fsync=0&fsync=1", "'fsync' is given twice"),
        ("file:a.seq?fsync", "'fsync' has no value"),
        ("file:a.seq?&fsync=0", "empty parameter"),
        ("file:a.seq?=1", "empty parameter"),
        ("file:a.seq?session=", "empty session name"),
        ("file:a%zz.seq", "not a %XX escape"),
        ("file:a%2.seq", "not a %XX escape"),
        ("file:a%00.seq", "contains NUL"),
        ("file:a#b.seq", "fragment"),
        ("file:a.seq?session=a#b", "fragment"),
        ("file:a%FF.seq", "not valid UTF-8"),
        ("sqlite:", "missing database path"),
        ("sqlite://", "missing database path"),
        ("sqlite:///", "missing database path"),
        ("sqlite:///?session=S", "missing database path"),
        ("sqlite:///:memory:?session=S", "in-memory database"),
        ("sqlite:///file:x.db?session=S&uri=true", "unknown parameter 'uri'"),
        ("sqlite:///file:x.db?session=S", "URI filenames"),
        ("sqlite://dbhost/x.db?session=S", "take no host ('dbhost')"),
        ("sqlite:x.db?session=", "empty session name"),
        ("sqlite:x.db?session=S&synchronous=FAST", "synchronous='FAST' is not one of"),
        ("sqlite:x.db?session=S&synchronous=", "synchronous='' is not one of"),
        ("sqlite:x.db?session=S&timeout=5", "unknown parameter 'timeout'"),
        ("sqlite:x.db?session=S&fsync=0", "unknown parameter 'fsync'"),
        ("sqlite:x.db?session=S&session=T", "'session' is given twice"),
        ("sqlite:x.db?session=S&create=", "create='' is not a boolean"),
        ("postgresql:db?session=S", "expected postgresql://"),
        ("postgresql://h/db?session=", "empty session name"),
        ("postgresql://h/db?session=S&table=", "empty table name"),
        ("postgresql://h/db?session=S&create=2", "create='2' is not a boolean"),
        ("postgresql://h/db?session=S#x", "fragment"),
        ("file:a.seq?reserve=0", "reserve must be in 1..MAX_SEQ_NUM"),
        ("file:a.seq?reserve=-5", "reserve='-5' is not a whole number"),
        ("sqlite:x.db?session=S&reserve=2.5", "reserve='2.5' is not a whole number"),
        ("sqlite:x.db?session=S&reserve=", "reserve='' is not a whole number"),
        ("postgresql://h/db?session=S&reserve=ten", "reserve='ten' is not a whole number"),
        ("memory:?reserve=10", "unknown parameter 'reserve'"),
    ],
)
def test_bad_url(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"^(bad store URL|empty store URL)") as info:
        parse_url(url)
    assert problem in str(info.value)
    # open_store gives the very same error, before opening anything.
    with pytest.raises(ValueError) as again:
        open_store(url)
    assert str(again.value) == str(info.value)


def test_bad_url_type() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse_url(b"memory:")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:fixseq.db",
        "sqlite:///fixseq.db?synchronous=FULL",
        "postgresql://127.0.0.1/db",
        "postgresql://127.0.0.1/db?sslmode=disable",
    ],
)
def test_missing_session(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"need \?session=NAME"):
        open_store(url)
    with pytest.raises(ValueError, match=r"need \?session=NAME"):
        open_async_store(url)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_redact() -> None:
    assert (
        redact_url("postgresql://fix:s3cret@h/db?session=S")
        == "postgresql://fix:***@h/db?session=S"
    )
    assert redact_url("postgresql://fix@h/db") == "postgresql://fix@h/db"
    assert redact_url("file:a:b@c") == "file:a:b@c"
    assert (
        redact_url("postgresql://h/db?user=fix&password=s3cret&session=S")
        == "postgresql://h/db?user=fix&password=***&session=S"
    )
    assert "s3cret" not in repr(parse_url("postgresql://fix:s3cret@h/db?password=s3cret"))
    with pytest.raises(ValueError) as info:
        parse_url("postgresql://fix:s3cret@h/db?session=")
    assert "s3cret" not in str(info.value)


def test_exported() -> None:
    assert fixseq.open_store is open_store
    assert fixseq.open_async_store is open_async_store
    assert {"open_store", "open_async_store"} <= set(fixseq.__all__)


# -- opening each kind -------------------------------------------------------------------


def test_open_memory() -> None:
    with open_store("memory:") as store:
        assert isinstance(store, MemorySeqStore)
        assert store.next_out() == 1
    with open_store("memory:") as fresh:  # a fresh store every time
        assert fresh.peek_out() == 1


def test_open_file(tmp_path: Path) -> None:
    path = tmp_path / "a b+c.seq"
    url = "file:" + str(path).replace(" ", "%20")
    with open_store(url) as store:
        assert isinstance(store, FileSeqStore)
        assert [store.next_out() for _ in range(3)] == [1, 2, 3]
        store.observed_in(7)
    assert path.exists()
    with open_store("file://" + str(path).replace(" ", "%20") + "?fsync=0") as again:
        assert again.snapshot() == (4, 8)


def test_open_file_fsync_off_is_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[int] = []
    real = os.fdatasync if hasattr(os, "fdatasync") else os.fsync

    def counting(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting, raising=False)
    monkeypatch.setattr(os, "fsync", counting)
    with open_store(f"file:{tmp_path}/a.seq?fsync=1") as store:
        syncs.clear()
        store.next_out()
        assert syncs, "fsync=1 must sync"
    with open_store(f"file:{tmp_path}/a.seq?fsync=0") as store:
        syncs.clear()
        store.next_out()
        assert not syncs, "fsync=0 must not sync"


@pytest.mark.parametrize(
    ("url", "reserve"),
    [
        ("file:a.seq?reserve=1000", 1000),
        ("sqlite:x.db?session=S&reserve=7", 7),
        ("postgresql://h/db?session=S&reserve=3", 3),
        ("file:a.seq", 1),
    ],
)
def test_parse_reserve(url: str, reserve: int) -> None:
    parsed = parse_url(url)
    assert parsed.reserve == reserve
    assert "reserve" not in (parsed.conninfo or "")  # fixseq's, never passed on to libpq


def test_open_with_reserve_writes_once_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real = os.fdatasync if hasattr(os, "fdatasync") else os.fsync

    def counting(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    with open_store(f"file:{tmp_path}/r.seq?reserve=50") as store:
        monkeypatch.setattr(os, "fdatasync", counting, raising=False)
        monkeypatch.setattr(os, "fsync", counting)
        assert [store.next_out() for _ in range(100)] == list(range(1, 101))
        # A few syncs per block of 50 (the file store may write both slots on a jump), not 100.
        assert 2 <= len(syncs) <= 6
    with open_store(f"sqlite:{tmp_path}/r.db?session=S&reserve=10") as sql:
        assert [sql.next_out() for _ in range(3)] == [1, 2, 3]
    with open_store(f"sqlite:{tmp_path}/r.db?session=S") as again:
        assert again.peek_out() == 4  # a clean close gave the rest of the block back


def test_open_file_create_0(tmp_path: Path) -> None:
    with pytest.raises(SeqStoreError):
        open_store(f"file:{tmp_path}/missing.seq?create=0")
    assert list(tmp_path.iterdir()) == []
    with open_store(f"file:{tmp_path}/there.seq"):
        pass
    with open_store(f"file:{tmp_path}/there.seq?create=0") as store:
        assert store.peek_out() == 1


def test_open_file_session_checked(tmp_path: Path) -> None:
    with open_store(f"file:{tmp_path}/a.seq?session=FIX.4.4%3AA-%3EB") as store:
        store.next_out()
    with pytest.raises(SeqStoreError, match="A->B"):
        open_store(f"file:{tmp_path}/a.seq?session=FIX.4.4%3AA-%3EC")


def test_open_sqlite_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    # The three forms name the same file; the session is percent-decoded only.
    with open_store("sqlite:///sub/f.db?session=a+b%20c") as store:
        assert isinstance(store, SqliteSeqStore)
        assert store.next_out() == 1
    with open_store("sqlite:sub/f.db?session=a+b%20c&synchronous=NORMAL") as store:
        assert store.next_out() == 2
    with open_store(f"sqlite:///{tmp_path}/sub/f.db?session=a+b%20c") as store:
        assert store.next_out() == 3
    assert fixseq.list_sessions(tmp_path / "sub" / "f.db") == ["a+b c"]
    with pytest.raises(SeqStoreError):
        open_store("sqlite:sub/f.db?session=other&create=0")
    assert fixseq.list_sessions(tmp_path / "sub" / "f.db") == ["a+b c"]
    with pytest.raises(SeqStoreError):
        open_store("sqlite:sub/missing.db?session=S&create=0")
    assert not (tmp_path / "sub" / "missing.db").exists()


def test_open_async(tmp_path: Path) -> None:
    async def main() -> None:
        memory = open_async_store("memory:")
        assert isinstance(memory, AsyncMemorySeqStore)
        async with open_async_store(f"file:{tmp_path}/a.seq") as file_store:
            assert isinstance(file_store, AsyncFileSeqStore)
            assert await file_store.next_out() == 1
        async with open_async_store(f"sqlite:{tmp_path}/a.db?session=S") as db_store:
            assert isinstance(db_store, AsyncSqliteSeqStore)
            await db_store.observed_in(4)
            assert await db_store.snapshot() == (1, 5)
        await memory.aclose()

    anyio.run(main)
    with open_store(f"file:{tmp_path}/a.seq") as store:
        assert store.peek_out() == 2


def test_postgres_without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if psycopg were not installed: importing it raises ImportError.
    for name in [n for n in sys.modules if n == "psycopg" or n.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "fixseq.postgres", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'fixseq\[postgres\]'"):
        open_store("postgresql://fix:s3cret@127.0.0.1/db?session=S")
    with pytest.raises(ImportError, match=r"fixseq\[postgres\]") as info:
        open_async_store("postgresql://fix:s3cret@127.0.0.1/db?session=S")
    assert "s3cret" not in str(info.value)


def test_postgres_unknown_libpq_parameter() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(ValueError, match='libpq rejects it: invalid URI query parameter: "bogus"'):
        open_store("postgresql://fix:s3cret@127.0.0.1/db?session=S&bogus=1")


def test_postgres_bad_table_is_value_error() -> None:
    url = pg_url(session="S", table="no-dashes")
    with pytest.raises(ValueError):
        open_store(url)


def test_open_postgres() -> None:
    session = f"urls {uuid.uuid4()}+x"
    table = f"fixseq_test_urls_{uuid.uuid4().hex[:8]}"
    url = pg_url(session=session, table=table)
    from fixseq.postgres import AsyncPostgresSeqStore, PostgresSeqStore, list_sessions

    with open_store(url) as store:
        assert isinstance(store, PostgresSeqStore)
        assert store.next_out() == 1
    with pytest.raises(SeqStoreError):
        open_store(pg_url(session=session + "-missing", table=table, create="0"))

    async def main() -> None:
        async with open_async_store(url) as twin:
            assert isinstance(twin, AsyncPostgresSeqStore)
            assert await twin.next_out() == 2

    anyio.run(main)
    dsn = os.environ["FIXSEQ_PG_DSN"]
    assert list_sessions(dsn, table=table) == [session]
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{table}"')
