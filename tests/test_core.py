"""The core's contract on the memory twins: semantics, limits, closed state, errors."""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

import fixseq
from fixseq import (
    MAX_SEQ_NUM,
    AdminSeqStore,
    AsyncAdminSeqStore,
    AsyncMemorySeqStore,
    AsyncSeqStore,
    InvalidSeqNumError,
    MemorySeqStore,
    SeqCounters,
    SeqNumExhaustedError,
    SeqState,
    SeqStore,
    SeqStoreError,
    StoreClosedError,
    to_async,
)
from fixseq.errors import CorruptStoreError, StoreIOError, StoreLockedError

if TYPE_CHECKING:
    from collections.abc import Callable

UTC = datetime.timezone.utc


def test_next_out_advances_by_one_and_peek_does_not() -> None:
    store = MemorySeqStore()
    assert [store.next_out() for _ in range(3)] == [1, 2, 3]
    assert store.peek_out() == 4
    assert store.peek_out() == 4
    assert store.next_out() == 4


def test_observed_in_is_a_high_water_mark() -> None:
    store = MemorySeqStore()
    assert store.current_in() == 1
    store.observed_in(1)
    assert store.current_in() == 2
    store.observed_in(9)
    assert store.current_in() == 10
    store.observed_in(3)  # a lower number never moves the mark back
    assert store.current_in() == 10
    store.observed_in(10)
    assert store.current_in() == 11


def test_seeds_reset_and_overrides() -> None:
    store = MemorySeqStore(50, 60)
    assert store.snapshot() == SeqState(50, 60)
    store.set_next_out(7)
    store.set_next_in(3)  # an override moves either way
    assert store.snapshot() == SeqState(next_out=7, next_in=3)
    store.reset()
    assert store.snapshot() == (1, 1)


def test_exhaustion_at_max_seq_num() -> None:
    store = MemorySeqStore(next_out=MAX_SEQ_NUM)
    assert store.next_out() == MAX_SEQ_NUM
    assert store.peek_out() == MAX_SEQ_NUM + 1
    for _ in range(2):
        with pytest.raises(SeqNumExhaustedError):
            store.next_out()
    assert store.peek_out() == MAX_SEQ_NUM + 1
    store.observed_in(MAX_SEQ_NUM)
    assert store.current_in() == MAX_SEQ_NUM + 1
    store.set_next_out(5)
    assert store.next_out() == 5


def test_creation_time_is_aware_utc_and_moves_only_on_reset() -> None:
    before = datetime.datetime.now(UTC)
    store = MemorySeqStore()
    created = store.creation_time()
    assert created.tzinfo is not None and created.utcoffset() == datetime.timedelta(0)
    assert before <= created <= datetime.datetime.now(UTC)
    store.set_next_out(9)
    store.set_next_in(9)
    store.next_out()
    assert store.creation_time() == created
    store.reset()
    assert store.creation_time() >= created


def test_created_at_keyword() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=2))
    given = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=tz)
    store = MemorySeqStore(created_at=given)
    assert store.creation_time() == given
    assert store.creation_time().tzinfo == UTC
    with pytest.raises(ValueError, match="aware"):
        MemorySeqStore(created_at=datetime.datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        MemorySeqStore(created_at="2026-01-01")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, MAX_SEQ_NUM + 1])
def test_bad_seeds(bad: int) -> None:
    with pytest.raises(InvalidSeqNumError):
        MemorySeqStore(next_out=bad)
    with pytest.raises(InvalidSeqNumError):
        AsyncMemorySeqStore(next_in=bad)


@pytest.mark.parametrize("bad", [1.0, "1", None, True, False])
def test_non_int_seeds(bad: object) -> None:
    with pytest.raises(TypeError):
        MemorySeqStore(next_out=bad)  # type: ignore[arg-type]


def test_int_subclass_is_accepted_bool_is_not() -> None:
    class Seq(int):
        pass

    store = MemorySeqStore()
    store.observed_in(Seq(4))
    assert store.current_in() == 5
    assert type(store.current_in()) is int
    with pytest.raises(TypeError):
        store.observed_in(True)


def test_close_is_idempotent_and_every_call_after_it_raises() -> None:
    store = MemorySeqStore()
    store.close()
    store.close()
    assert store.closed
    calls: list[Callable[[], object]] = [
        store.next_out,
        store.peek_out,
        store.current_in,
        store.reset,
        store.snapshot,
        store.creation_time,
        lambda: store.observed_in(1),
        lambda: store.set_next_out(1),
        lambda: store.set_next_in(1),
    ]
    for call in calls:
        with pytest.raises(StoreClosedError):
            call()


def test_context_managers_return_the_store_and_close_it() -> None:
    with MemorySeqStore() as store:
        assert isinstance(store, MemorySeqStore)
        store.next_out()
    assert store.closed

    async def main() -> None:
        async with AsyncMemorySeqStore() as astore:
            assert isinstance(astore, AsyncMemorySeqStore)
            assert await astore.next_out() == 1
        assert astore.as_sync().closed

    anyio.run(main)


@pytest.mark.anyio
async def test_twins_share_counters_and_closed_state() -> None:
    sync = MemorySeqStore()
    twin = sync.as_async()
    assert sync.next_out() == 1
    assert await twin.next_out() == 2
    await twin.observed_in(4)
    assert sync.current_in() == 5
    assert twin.as_sync() is sync
    assert await twin.snapshot() == sync.snapshot()
    assert await twin.creation_time() == sync.creation_time()
    await twin.set_next_out(10)
    await twin.set_next_in(20)
    assert await twin.peek_out() == 10
    assert await twin.current_in() == 20
    await twin.reset()
    assert sync.snapshot() == (1, 1)
    await twin.aclose()
    with pytest.raises(StoreClosedError):
        sync.next_out()
    with pytest.raises(StoreClosedError):
        await twin.next_out()

    other = AsyncMemorySeqStore(3, 4)
    back = other.as_sync()
    assert back.snapshot() == (3, 4)
    back.close()
    with pytest.raises(StoreClosedError):
        await other.peek_out()
    await other.aclose()  # a second close does nothing


def test_errors_subclass_the_builtin_a_caller_would_catch() -> None:
    assert issubclass(InvalidSeqNumError, ValueError)
    assert issubclass(SeqNumExhaustedError, OverflowError)
    assert issubclass(StoreClosedError, RuntimeError)
    assert issubclass(StoreIOError, OSError)
    assert issubclass(StoreLockedError, OSError)
    for error in (
        InvalidSeqNumError,
        SeqNumExhaustedError,
        StoreClosedError,
        CorruptStoreError,
        StoreIOError,
        StoreLockedError,
    ):
        assert issubclass(error, SeqStoreError)
        assert getattr(fixseq, error.__name__) is error


def test_protocols_check_names_at_runtime() -> None:
    store = MemorySeqStore()
    assert isinstance(store, SeqStore)
    assert isinstance(store, AdminSeqStore)
    assert isinstance(store.as_async(), AsyncSeqStore)
    assert isinstance(store.as_async(), AsyncAdminSeqStore)
    assert not isinstance(object(), SeqStore)
    assert isinstance(store, SeqCounters)


def test_version_and_public_names() -> None:
    assert isinstance(fixseq.__version__, str) and fixseq.__version__
    for name in fixseq.__all__:
        assert hasattr(fixseq, name), name


def test_import_fixseq_pulls_in_no_optional_dependency(child_env: dict[str, str]) -> None:
    code = (
        "import sys, fixseq, fixseq.errors\n"
        "bad = [m for m in ('trio', 'hypothesis', 'pytest', 'psycopg', 'fixcore', 'quickfix')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


class ThirdPartyStore:
    """A duck-typed store with no fixseq base class and only the five methods."""

    def __init__(self) -> None:
        self.out = 1
        self.inn = 1

    def next_out(self) -> int:
        self.out += 1
        return self.out - 1

    def peek_out(self) -> int:
        return self.out

    def observed_in(self, seq_num: int) -> None:
        self.inn = max(self.inn, seq_num + 1)

    def current_in(self) -> int:
        return self.inn

    def reset(self) -> None:
        self.out = self.inn = 1


@pytest.mark.anyio
async def test_to_async_wraps_a_third_party_store() -> None:
    wrapped = to_async(ThirdPartyStore())
    assert isinstance(wrapped, AsyncSeqStore)
    assert not isinstance(wrapped, AsyncAdminSeqStore)  # it only has the five
    assert not hasattr(wrapped, "set_next_out")
    assert await wrapped.next_out() == 1
    await wrapped.observed_in(5)
    assert await wrapped.current_in() == 6
    assert await wrapped.peek_out() == 2
    await wrapped.reset()
    assert await wrapped.peek_out() == 1

    admin = to_async(MemorySeqStore())
    assert isinstance(admin, AsyncAdminSeqStore)
    assert await admin.snapshot() == (1, 1)
    await admin.aclose()


def test_to_async_rejects_a_non_store() -> None:
    with pytest.raises(TypeError, match="peek_out"):
        to_async(object())  # type: ignore[call-overload]


def test_sync_and_async_twins_have_the_same_methods() -> None:
    """Paired names map by one rule: close -> aclose, __enter__ -> __aenter__ ..."""
    rename = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
    sync_names = {
        rename.get(name, name)
        for name in dir(MemorySeqStore)
        if (not name.startswith("_") or name in rename) and callable(getattr(MemorySeqStore, name))
    } - {"as_async"}
    async_names = {
        name
        for name in dir(AsyncMemorySeqStore)
        if (not name.startswith("_") or name in rename.values())
        and callable(getattr(AsyncMemorySeqStore, name))
    } - {"as_sync"}
    assert sync_names == async_names


def test_repr_names_the_state() -> None:
    store = MemorySeqStore(3, 4)
    assert "next_out=3" in repr(store) and "next_in=4" in repr(store)
    assert "MemorySeqStore" in repr(store.as_async())
    store.close()
    assert "closed" in repr(store)
