"""Every coroutine of every async twin is a checkpoint (issue 15, items 15 and 16).

A checkpoint, as trio means it: the call can be cancelled there, and it lets the
scheduler run other tasks. Checked on each twin (memory, file with reserve 1 and
100, SQLite, PostgreSQL when a server is given, ``to_async`` shells) and on each
of its methods, under asyncio and trio:

- a loop of calls under ``move_on_after`` stops at its deadline;
- another task runs while one task calls in a loop (its runs are counted);
- a call made in an already cancelled scope raises the cancellation and changes
  nothing (the counters, the creation time, the next number handed out);
- a call cancelled while it waits for its durable write either returns its
  number or raises the cancellation; the number is then used up, never reused.
"""

from __future__ import annotations

import datetime
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from fixseq import (
    AsyncFileSeqStore,
    AsyncMemorySeqStore,
    AsyncSqliteSeqStore,
    FileSeqStore,
    MemorySeqStore,
    SeqState,
    SqliteSeqStore,
    to_async,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from fixseq import AsyncAdminSeqStore, AsyncSeqStore

pytestmark = pytest.mark.anyio

SESSION = "FIX.4.4:BANK->BROKER"
CREATED = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)


class FiveMethods:
    """A third party's store with only the five protocol methods (to_async gives an AsyncShell)."""

    def __init__(self) -> None:
        self._core = MemorySeqStore(5, 7)

    def next_out(self) -> int:
        return self._core.next_out()

    def peek_out(self) -> int:
        return self._core.peek_out()

    def observed_in(self, seq_num: int) -> None:
        self._core.observed_in(seq_num)

    def current_in(self) -> int:
        return self._core.current_in()

    def reset(self) -> None:
        self._core.reset()


def _postgres(reserve: int) -> AsyncAdminSeqStore:
    from postgres_support import require_dsn, unique

    from fixseq.postgres import AsyncPostgresSeqStore

    return AsyncPostgresSeqStore(require_dsn(), unique("cp"), table=unique("cp"), reserve=reserve)


TWINS: dict[str, Callable[[Path], AsyncSeqStore]] = {
    "memory": lambda tmp: AsyncMemorySeqStore(5, 7, created_at=CREATED),
    "file-reserve-1": lambda tmp: AsyncFileSeqStore(tmp / "s.seq", fsync=False),
    "file-reserve-100": lambda tmp: AsyncFileSeqStore(tmp / "s.seq", fsync=False, reserve=100),
    "sqlite-reserve-1": lambda tmp: AsyncSqliteSeqStore(tmp / "s.db", SESSION, synchronous="OFF"),
    "sqlite-reserve-100": lambda tmp: AsyncSqliteSeqStore(
        tmp / "s.db", SESSION, synchronous="OFF", reserve=100
    ),
    "postgres-reserve-1": lambda tmp: _postgres(1),
    "postgres-reserve-100": lambda tmp: _postgres(100),
    "to_async-admin": lambda tmp: to_async(MemorySeqStore(5, 7)),
    "to_async-five": lambda tmp: to_async(FiveMethods()),
}

# Each method as a call on a twin; the admin ones apply to admin twins only.
CALLS: dict[str, Callable[[Any], Awaitable[object]]] = {
    "next_out": lambda s: s.next_out(),
    "peek_out": lambda s: s.peek_out(),
    "observed_in": lambda s: s.observed_in(9),
    "current_in": lambda s: s.current_in(),
    "reset": lambda s: s.reset(),
    "set_next_out": lambda s: s.set_next_out(11),
    "set_next_in": lambda s: s.set_next_in(13),
    "snapshot": lambda s: s.snapshot(),
    "creation_time": lambda s: s.creation_time(),
}
ADMIN_ONLY = {"set_next_out", "set_next_in", "snapshot", "creation_time"}


@pytest.fixture(params=sorted(TWINS))
def twin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AsyncSeqStore]:
    store = TWINS[request.param](tmp_path)
    yield store
    close = getattr(store, "as_sync", None)
    if close is not None:
        close().close()


@pytest.fixture(params=sorted(CALLS))
def call(request: pytest.FixtureRequest, twin: AsyncSeqStore) -> Callable[[], Awaitable[object]]:
    name = request.param
    if name in ADMIN_ONLY and not hasattr(twin, "snapshot"):
        pytest.skip(f"{type(twin).__name__} has no {name}")
    method = CALLS[name]
    return lambda: method(twin)


async def _state(twin: AsyncSeqStore) -> tuple[int, int, datetime.datetime | None]:
    created = await twin.creation_time() if hasattr(twin, "creation_time") else None
    return await twin.peek_out(), await twin.current_in(), created


async def test_a_loop_of_calls_stops_at_its_deadline(
    twin: AsyncSeqStore, call: Callable[[], Awaitable[object]]
) -> None:
    # Without a checkpoint the deadline is never seen: the loop runs to its end.
    limit = 200_000
    calls = 0
    with anyio.move_on_after(0.02) as scope:
        while calls < limit:
            await call()
            calls += 1
    assert scope.cancelled_caught
    assert calls < limit


async def test_another_task_runs_while_one_calls_in_a_loop(
    twin: AsyncSeqStore, call: Callable[[], Awaitable[object]]
) -> None:
    calls = 200
    runs = 0
    started = anyio.Event()
    stop = False

    async def other() -> None:
        nonlocal runs
        started.set()
        while not stop:
            runs += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await started.wait()
        runs = 0
        for _ in range(calls):
            await call()
        runs_meanwhile = runs
        stop = True
    # A call that yields once lets the other task run about once.
    assert runs_meanwhile >= calls // 2, runs_meanwhile


async def test_a_call_in_a_cancelled_scope_raises_and_changes_nothing(
    twin: AsyncSeqStore, call: Callable[[], Awaitable[object]]
) -> None:
    await twin.observed_in(2)  # a state that every change below would move
    before = await _state(twin)
    for _ in range(100):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await call()
            pytest.fail("the call returned in a cancelled scope")
        assert scope.cancelled_caught
    assert await _state(twin) == before
    assert await twin.next_out() == before[0]  # no number was used up


async def test_a_call_in_a_cancelled_scope_never_reaches_the_store(tmp_path: Path) -> None:
    # The same, seen from the file: not a byte written by 100 cancelled calls.
    twin = AsyncFileSeqStore(tmp_path / "s.seq", reserve=100)
    await twin.next_out()
    image = (tmp_path / "s.seq").read_bytes()
    for _ in range(100):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await twin.next_out()
    assert (tmp_path / "s.seq").read_bytes() == image
    await twin.aclose()


class HeldWrites:
    """Hold every durable write of a store class until released: enough to cancel a waiter."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type, hook: str) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.armed = False
        original = getattr(cls, hook)

        def held(store: object, *args: object) -> object:
            if self.armed:
                self.entered.set()
                self.release.wait(10)
            return original(store, *args)

        monkeypatch.setattr(cls, hook, held)


DURABLE: dict[str, tuple[type, str, Callable[[Path], AsyncAdminSeqStore]]] = {
    "file": (FileSeqStore, "_persist", lambda tmp: AsyncFileSeqStore(tmp / "s.seq")),
    "sqlite": (SqliteSeqStore, "_apply", lambda tmp: AsyncSqliteSeqStore(tmp / "s.db", SESSION)),
}


@pytest.mark.parametrize("kind", sorted(DURABLE))
async def test_a_call_cancelled_while_its_write_runs_never_reuses_its_number(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls, hook, make = DURABLE[kind]
    held = HeldWrites(monkeypatch, cls, hook)
    twin = make(tmp_path)
    first = await twin.next_out()
    got: list[int] = []
    with anyio.CancelScope() as scope:
        held.armed = True

        async def cancel_once_written() -> None:
            await anyio.to_thread.run_sync(held.entered.wait)
            scope.cancel()
            held.release.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_once_written)
            got.append(await twin.next_out())
    held.armed = False
    # The number was either handed out or used up: the store is past it either way.
    assert got in ([], [first + 1])
    assert await twin.peek_out() == first + 2
    assert await twin.next_out() == first + 2
    await twin.aclose()
    reopened = make(tmp_path)
    assert await reopened.snapshot() == SeqState(first + 3, 1)
    await reopened.aclose()


async def test_a_cancelled_file_open_closes_what_it_opened(tmp_path: Path) -> None:
    # The one open-in-thread rule of every twin: the file's lock is not left held.
    with anyio.CancelScope() as scope:
        scope.cancel()
        await AsyncFileSeqStore.open(tmp_path / "s.seq")
        pytest.fail("open() returned in a cancelled scope")
    assert scope.cancelled_caught
    FileSeqStore(tmp_path / "s.seq").close()  # StoreLockedError if the lock were held


async def test_aclose_closes_even_when_cancelled_then_raises(tmp_path: Path) -> None:
    twin = AsyncFileSeqStore(tmp_path / "s.seq")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await twin.aclose()
        pytest.fail("aclose() returned in a cancelled scope")
    assert twin.as_sync().closed
