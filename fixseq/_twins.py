"""Async shells over blocking stores: no blocking call ever runs on the event loop.

A store whose calls block on I/O is written once, sync; its async twin is an
`AsyncAdminShell` over it, in the manner of anyio's ``AsyncFile``: each
coroutine runs the wrapped method in a worker thread through
``anyio.to_thread.run_sync``, so the event loop never blocks and asyncio and
trio both work. [`to_async`][fixseq.to_async] gives a third party's sync store the same
shell.

Over a single-writer durable core (the file store) the shell does better, once
for every such store: the change itself is applied on the event loop's thread
(the core's lock is held for nanoseconds and its ``_change`` does no I/O), and
only the wait for durability leaves the loop. Those waits are coalesced per
store and event loop: one worker thread writes and syncs the newest state while
the tasks whose changes arrive meanwhile wait on an ``anyio.Event``, and
the next write covers them all. So 64 tasks share syncs as 64 threads would,
at the cost of one thread hop per write, not per call. Stores whose backend
does the I/O of each change itself (``_shared``: SQLite, PostgreSQL) keep one
offload per call.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, cast, overload

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._core import SeqCounters
from ._protocols import AdminSeqStore, AsyncAdminSeqStore, AsyncSeqStore, SeqState, SeqStore
from ._rules import check_seq_num

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["AsyncAdminShell", "AsyncShell", "offload", "open_in_thread", "to_async"]

T = TypeVar("T")
S = TypeVar("S", bound=SeqStore)
A = TypeVar("A", bound=AdminSeqStore)

_ADMIN_METHODS = ("set_next_out", "set_next_in", "snapshot", "creation_time", "close")
# A direct core's methods the shell runs on the loop's thread: its reads as they
# are, its changes by their parts (the wait for durability in a worker thread).
_READS = frozenset(("peek_out", "current_in", "snapshot", "creation_time"))
_CHANGES = frozenset(("next_out", "observed_in", "reset", "set_next_out", "set_next_in"))
# The core's public methods the shell replaces by their parts (_begin here,
# _wait_durable in a worker thread) or calls on the loop's thread; a store that
# overrides any of them gets the plain offload, so its own code always runs.
_DIRECT_METHODS = (
    "next_out",
    "peek_out",
    "observed_in",
    "current_in",
    "reset",
    "set_next_out",
    "set_next_in",
    "snapshot",
    "creation_time",
)

# Per durable core, per thread running an event loop: the write in flight for
# that loop's tasks (an Event set when it ends). Keyed by thread because anyio
# Events belong to one loop, and a core may serve loops in several threads.
_Flights = dict[int, anyio.Event]
_flights_by_core: weakref.WeakKeyDictionary[SeqCounters, _Flights] = weakref.WeakKeyDictionary()
_flights_lock = threading.Lock()


async def offload(func: Callable[..., T], *args: object) -> T:
    """Run ``func(*args)`` in anyio's worker threads and return its result.

    Cancellation waits for the call to finish (a durable write is never cut
    off half way); the caller then sees the cancellation, not the result.
    """
    return await anyio.to_thread.run_sync(func, *args)


def _direct_core(wrapped: object) -> SeqCounters | None:
    """``wrapped`` if it is a single-writer durable core: its changes may run on the loop."""
    if not isinstance(wrapped, SeqCounters) or not wrapped._durable or wrapped._shared:
        return None
    cls = type(wrapped)
    for name in _DIRECT_METHODS:
        if getattr(cls, name) is not getattr(SeqCounters, name):
            return None
    return wrapped


def _flights_of(core: SeqCounters) -> _Flights:
    with _flights_lock:
        flights = _flights_by_core.get(core)
        if flights is None:
            flights = _flights_by_core[core] = {}
        return flights


async def _until_durable(core: SeqCounters, flights: _Flights, ticket: int) -> None:
    """Return once change ``ticket`` of ``core`` is durable, without blocking the loop.

    One task at a time per loop (the flusher) runs the core's group-commit wait
    in a worker thread; it writes the newest state, covering every change made
    before the write began. The others wait for it to end, then return if
    covered, or one of them flushes next. A cancelled waiter just leaves; a
    cancelled flusher's thread finishes its write first (anyio never abandons
    it), and its ``finally`` wakes the others, so nothing is left stuck. A
    failed write raises in the flusher, and every waiter it wakes finds the
    store stopped and raises [`StoreIOError`][fixseq.StoreIOError] too.
    """
    key = threading.get_ident()
    while ticket > core._durable_changes:
        done = flights.get(key)
        if done is not None:
            await done.wait()
            continue
        if core._failure is not None:
            # Stopped: no write will cover us. (A closed store's own close may
            # still be writing our change: the worker thread waits for it.)
            core._raise_unusable()
        flights[key] = done = anyio.Event()
        try:
            await anyio.to_thread.run_sync(core._wait_durable, ticket)
        finally:
            del flights[key]
            done.set()


class AsyncShell(Generic[S]):
    """The five [`AsyncSeqStore`][fixseq.AsyncSeqStore] methods over a blocking store.

    Each coroutine runs the wrapped store's method in a worker thread. Over a
    single-writer durable core, the change is applied on the event loop's
    thread and only the (shared) durable write runs in a worker thread; the
    memory twin, whose lock is held for nanoseconds, runs every method on the
    event loop's thread.

    Every coroutine is a checkpoint, as trio means it, whatever it runs: it
    begins with ``anyio.lowlevel.checkpoint()``, so a call in a cancelled
    scope raises the cancellation before it changes anything, and a task
    calling in a loop lets the others run and sees its deadline.
    """

    #: True for a twin whose wrapped store never blocks (memory): its calls run
    #: on the event loop's thread, not in a worker thread.
    _on_loop: ClassVar[bool] = False

    def __init__(self, wrapped: S) -> None:
        self._wrapped = wrapped
        self._core = _direct_core(wrapped)
        self._flights: _Flights = {} if self._core is None else _flights_of(self._core)

    @property
    def wrapped(self) -> S:
        """The blocking store this shell runs, shared (same counters, same closed state)."""
        return self._wrapped

    async def _call(self, method: Callable[..., T], *args: object) -> T:
        """Run ``method`` (one of the wrapped store's) for a coroutine: every coroutine's one path.

        First a plain checkpoint: the cancellation point and the yield to the
        scheduler, *before* the call, so a cancelled call has changed nothing.
        (Checking for cancellation first and yielding shielded after the change,
        trio's pattern for calls that complete at once, would cost a cancel
        scope per call for the same guarantee: nothing below can be cut short
        between the change and the return, except a durable wait, see below.)
        Then the call, by the cheapest means that never blocks the loop: on the
        loop's thread for the memory twin and a direct core's reads, the change
        on the loop and only the wait for durability in a worker thread for a
        direct core's changes, and the whole call in a worker thread otherwise.

        A call cancelled while it waits (for a worker thread, or for the
        durable write that covers it) still completes its change: it returns
        its result, or raises the cancellation, and then a number it took is
        used up, never handed out again.
        """
        await anyio.lowlevel.checkpoint()
        core = self._core
        if self._on_loop or (core is not None and method.__name__ in _READS):
            return method(*args)  # no I/O: the counters in memory
        if core is None or method.__name__ not in _CHANGES:
            return await offload(method, *args)
        name = method.__name__
        seq_num, ticket = core._begin(name, check_seq_num(args[0]) if args else 0)
        if ticket > core._durable_changes:
            await _until_durable(core, self._flights, ticket)
        return cast("T", seq_num)

    async def next_out(self) -> int:
        """As the wrapped store's ``next_out()``; any I/O runs in a worker thread."""
        return await self._call(self._wrapped.next_out)

    async def peek_out(self) -> int:
        """As the wrapped store's ``peek_out()``."""
        return await self._call(self._wrapped.peek_out)

    async def observed_in(self, seq_num: int) -> None:
        """As the wrapped store's ``observed_in(seq_num)``; any I/O runs in a worker thread."""
        await self._call(self._wrapped.observed_in, seq_num)

    async def current_in(self) -> int:
        """As the wrapped store's ``current_in()``."""
        return await self._call(self._wrapped.current_in)

    async def reset(self) -> None:
        """As the wrapped store's ``reset()``; any I/O runs in a worker thread."""
        await self._call(self._wrapped.reset)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self._wrapped!r}>"


class AsyncAdminShell(AsyncShell[A]):
    """An `AsyncShell` with the admin methods and async context management.

    It shares the wrapped store's counters and closed state: closing either
    closes both. ``as_sync()`` returns the wrapped store.
    """

    @classmethod
    def _over(cls, wrapped: A) -> Self:
        """Make a twin over an already open store, without running ``__init__``."""
        twin = cls.__new__(cls)
        AsyncShell.__init__(twin, wrapped)
        return twin

    def as_sync(self) -> A:
        """Return the blocking twin: the same counters, the same closed state."""
        return self._wrapped

    async def set_next_out(self, seq_num: int) -> None:
        """As the wrapped store's ``set_next_out(seq_num)``."""
        await self._call(self._wrapped.set_next_out, seq_num)

    async def set_next_in(self, seq_num: int) -> None:
        """As the wrapped store's ``set_next_in(seq_num)``."""
        await self._call(self._wrapped.set_next_in, seq_num)

    async def snapshot(self) -> SeqState:
        """As the wrapped store's ``snapshot()``."""
        return await self._call(self._wrapped.snapshot)

    async def creation_time(self) -> datetime.datetime:
        """As the wrapped store's ``creation_time()``."""
        return await self._call(self._wrapped.creation_time)

    async def aclose(self) -> None:
        """Close the store (and its twin); a second call does nothing.

        Shielded from cancellation, so a cancelled task still releases the
        store's file lock or connection; the cancellation is raised once the
        store is closed.
        """
        with anyio.CancelScope(shield=True):
            await self._call(self._wrapped.close)
        await anyio.lowlevel.checkpoint_if_cancelled()

    async def __aenter__(self) -> Self:
        """Return the store itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store."""
        await self.aclose()


async def open_in_thread(opener: Callable[[], T], close: Callable[[T], object]) -> T:
    """Open a store with ``opener()`` in a worker thread; the one rule of every twin's ``open()``.

    The opening itself is shielded (it takes milliseconds, and cutting it off
    would leave a half-open store nobody holds). If the caller was cancelled
    meanwhile, the store is closed again with ``close(store)`` and the
    cancellation propagates: no file lock or connection is left held.

    Raises:
        Whatever ``opener`` raises, or the caller's cancellation.
    """
    with anyio.CancelScope(shield=True):
        store = await offload(opener)
    try:
        await anyio.lowlevel.checkpoint_if_cancelled()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await offload(close, store)
        raise
    return store


@overload
def to_async(store: AdminSeqStore) -> AsyncAdminSeqStore: ...
@overload
def to_async(store: SeqStore) -> AsyncSeqStore: ...
def to_async(store: SeqStore) -> AsyncSeqStore:
    """Wrap any blocking store, a third party's too, as an async one.

    Each call runs the store's method in a worker thread through anyio, so it
    works under asyncio and trio. A store that also has ``set_next_out``,
    ``set_next_in``, ``snapshot``, ``creation_time`` and ``close`` gets an
    [`AsyncAdminSeqStore`][fixseq.AsyncAdminSeqStore] (with ``aclose`` and ``async with``);
    one with only the five protocol methods gets an
    [`AsyncSeqStore`][fixseq.AsyncSeqStore] with exactly those five.

    Raises:
        TypeError: ``store`` lacks one of the five [`SeqStore`][fixseq.SeqStore] methods.
    """
    missing = [
        name
        for name in ("next_out", "peek_out", "observed_in", "current_in", "reset")
        if not callable(getattr(store, name, None))
    ]
    if missing:
        raise TypeError(f"{type(store).__name__} is not a SeqStore: no {', '.join(missing)}")
    if all(callable(getattr(store, name, None)) for name in _ADMIN_METHODS):
        return AsyncAdminShell(cast("AdminSeqStore", store))
    return AsyncShell(store)
