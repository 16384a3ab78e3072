"""``reserve=`` and the bool keywords: one rule for every store, twin and URL (issue 15, item 11).

A reserve that cannot fit (above ``MAX_SEQ_NUM``) or is below 1 is refused at
construction with [`InvalidSeqNumError`][fixseq.InvalidSeqNumError] naming
``reserve`` and the limit, before anything is created; the message is the same
from every store's constructor, every async twin's constructor and ``open()``,
and every URL's ``?reserve=``. A bool keyword (``fsync=``, ``create=``) given
anything but a ``bool`` is a ``TypeError`` on every store.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from fixseq import (
    MAX_SEQ_NUM,
    AsyncFileSeqStore,
    AsyncSqliteSeqStore,
    FileSeqStore,
    InvalidSeqNumError,
    SqliteSeqStore,
    open_async_store,
    open_store,
)
from fixseq._urls import parse_url

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

SESSION = "FIX.4.4:BANK->BROKER"


def _dsn() -> str:
    from postgres_support import require_dsn

    return require_dsn()


def _pg_sync(tmp: Path, **kw: Any) -> object:
    from fixseq.postgres import PostgresSeqStore

    return PostgresSeqStore(_dsn(), SESSION, table="reserve_validation", **kw)


def _pg_async(tmp: Path, **kw: Any) -> object:
    from fixseq.postgres import AsyncPostgresSeqStore

    return AsyncPostgresSeqStore(_dsn(), SESSION, table="reserve_validation", **kw)


def _pg_open(tmp: Path, **kw: Any) -> object:
    from fixseq.postgres import AsyncPostgresSeqStore

    return anyio.run(
        lambda: AsyncPostgresSeqStore.open(_dsn(), SESSION, table="reserve_validation", **kw)
    )


def _url(url: str, reserve: object) -> str:
    return f"{url}{'&' if '?' in url else '?'}reserve={reserve}"


# Every way to build a store that takes reserve= and create= (paths under tmp).
BUILDERS: dict[str, Callable[..., object]] = {
    "FileSeqStore": lambda tmp, **kw: FileSeqStore(tmp / "s.seq", **kw),
    "AsyncFileSeqStore": lambda tmp, **kw: AsyncFileSeqStore(tmp / "s.seq", **kw),
    "AsyncFileSeqStore.open": lambda tmp, **kw: anyio.run(
        lambda: AsyncFileSeqStore.open(tmp / "s.seq", **kw)
    ),
    "SqliteSeqStore": lambda tmp, **kw: SqliteSeqStore(tmp / "s.db", SESSION, **kw),
    "AsyncSqliteSeqStore": lambda tmp, **kw: AsyncSqliteSeqStore(tmp / "s.db", SESSION, **kw),
    "AsyncSqliteSeqStore.open": lambda tmp, **kw: anyio.run(
        lambda: AsyncSqliteSeqStore.open(tmp / "s.db", SESSION, **kw)
    ),
    "PostgresSeqStore": _pg_sync,
    "AsyncPostgresSeqStore": _pg_async,
    "AsyncPostgresSeqStore.open": _pg_open,
}
URLS = {
    "file": lambda tmp: f"file:{tmp / 's.seq'}",
    "sqlite": lambda tmp: f"sqlite:{tmp / 's.db'}?session=S",
    "postgresql": lambda tmp: _dsn_url(),
}


def _dsn_url() -> str:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(_dsn())
    return (
        f"postgresql://{params['user']}:{params.get('password', '')}@{params['host']}:"
        f"{params['port']}/{params['dbname']}?session=S&table=reserve_validation"
    )


TOO_BIG = [MAX_SEQ_NUM + 1, 2**64, 10**30]
TOO_SMALL = [0, -1, -(2**63)]


def _message(value: int) -> str:
    return f"reserve must be in 1..MAX_SEQ_NUM ({MAX_SEQ_NUM}), got {value}"


@pytest.mark.parametrize("value", TOO_BIG + TOO_SMALL)
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_a_reserve_out_of_range_is_refused_before_anything_is_created(
    builder: str, value: int, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSeqNumError) as caught:
        BUILDERS[builder](tmp_path, reserve=value)
    assert str(caught.value) == _message(value)
    assert isinstance(caught.value, ValueError)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("value", [1.0, "5", None, True, False])
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_a_reserve_that_is_no_int_is_a_type_error(
    builder: str, value: object, tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match=f"^reserve must be an int, not {type(value).__name__}$"):
        BUILDERS[builder](tmp_path, reserve=value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_the_largest_reserve_works(builder: str, tmp_path: Path) -> None:
    store: Any = BUILDERS[builder](tmp_path, reserve=MAX_SEQ_NUM)
    sync = store.as_sync() if hasattr(store, "as_sync") else store
    try:
        sync.reset()
        assert [sync.next_out(), sync.next_out()] == [1, 2]
    finally:
        sync.close()


@pytest.mark.parametrize("value", [*TOO_BIG, 0])  # "-1" is no number at all in a URL
@pytest.mark.parametrize("kind", sorted(URLS))
def test_a_url_reserve_out_of_range_is_refused_with_the_same_words(
    kind: str, value: int, tmp_path: Path
) -> None:
    url = _url(URLS[kind](tmp_path), value)
    for parse in (parse_url, open_store, open_async_store):
        with pytest.raises(InvalidSeqNumError) as caught:
            parse(url)
        assert str(caught.value).endswith(": " + _message(value)), str(caught.value)
        assert str(caught.value).startswith("bad store URL ")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", sorted(URLS))
def test_a_url_takes_the_largest_reserve(kind: str, tmp_path: Path) -> None:
    assert parse_url(_url(URLS[kind](tmp_path), MAX_SEQ_NUM)).reserve == MAX_SEQ_NUM


BOOL_KEYWORDS = {
    "FileSeqStore": ("fsync", "create"),
    "AsyncFileSeqStore": ("fsync", "create"),
    "AsyncFileSeqStore.open": ("fsync", "create"),
    "SqliteSeqStore": ("create",),
    "AsyncSqliteSeqStore": ("create",),
    "AsyncSqliteSeqStore.open": ("create",),
    "PostgresSeqStore": ("create",),
    "AsyncPostgresSeqStore": ("create",),
    "AsyncPostgresSeqStore.open": ("create",),
}


@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0])
@pytest.mark.parametrize(
    ("builder", "keyword"),
    [(builder, keyword) for builder, keywords in BOOL_KEYWORDS.items() for keyword in keywords],
)
def test_a_bool_keyword_takes_a_bool_only(
    builder: str, keyword: str, value: object, tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match=f"^{keyword} must be a bool, not {type(value).__name__}$"):
        BUILDERS[builder](tmp_path, **{keyword: value})
    assert os.listdir(tmp_path) == []


def test_every_store_builder_is_checked() -> None:
    assert set(BOOL_KEYWORDS) == set(BUILDERS)


def test_a_url_reserve_of_many_digits_is_refused_without_parsing_them(tmp_path: Path) -> None:
    with pytest.raises(InvalidSeqNumError) as caught:
        parse_url(_url(URLS["file"](tmp_path), "9" * 5000))
    assert str(caught.value).endswith(
        f"reserve must be in 1..MAX_SEQ_NUM ({MAX_SEQ_NUM}), got a number of 5000 digits"
    )
    assert parse_url(_url(URLS["file"](tmp_path), "0" * 5000 + "7")).reserve == 7
