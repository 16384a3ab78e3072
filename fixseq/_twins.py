"""Async shells over blocking stores: one anyio offload per call.

A store whose calls block on I/O is written once, sync; its async twin is an
`AsyncAdminShell` over it, in the manner of anyio's ``AsyncFile``: each
coroutine runs the wrapped method in a worker thread through
``anyio.to_thread.run_sync``, so the event loop never blocks and asyncio and
trio both work. [`to_async`][fixseq.to_async] gives a third party's sync store the same
shell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

import anyio
import anyio.to_thread

from ._protocols import AdminSeqStore, AsyncAdminSeqStore, AsyncSeqStore, SeqState, SeqStore

if TYPE_CHECKING:
    import datetime
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["AsyncAdminShell", "AsyncShell", "offload", "to_async"]

T = TypeVar("T")
S = TypeVar("S", bound=SeqStore)
A = TypeVar("A", bound=AdminSeqStore)

_ADMIN_METHODS = ("set_next_out", "set_next_in", "snapshot", "creation_time", "close")


async def offload(func: Callable[..., T], *args: object) -> T:
    """Run ``func(*args)`` in anyio's worker threads and return its result.

    Cancellation waits for the call to finish (a durable write is never cut
    off half way); the caller then sees the cancellation, not the result.
    """
    return await anyio.to_thread.run_sync(func, *args)


class AsyncShell(Generic[S]):
    """The five [`AsyncSeqStore`][fixseq.AsyncSeqStore] methods over a blocking store.

    Each coroutine runs the wrapped store's method in a worker thread (the memory
    twin, whose lock is held for nanoseconds, runs it on the event loop's thread).
    """

    def __init__(self, wrapped: S) -> None:
        self._wrapped = wrapped

    @property
    def wrapped(self) -> S:
        """The blocking store this shell runs, shared (same counters, same closed state)."""
        return self._wrapped

    def _run(self, func: Callable[..., T], *args: object) -> Awaitable[T]:
        return offload(func, *args)

    async def next_out(self) -> int:
        """As the wrapped store's ``next_out()``."""
        return await self._run(self._wrapped.next_out)

    async def peek_out(self) -> int:
        """As the wrapped store's ``peek_out()``."""
        return await self._run(self._wrapped.peek_out)

    async def observed_in(self, seq_num: int) -> None:
        """As the wrapped store's ``observed_in(seq_num)``."""
        await self._run(self._wrapped.observed_in, seq_num)

    async def current_in(self) -> int:
        """As the wrapped store's ``current_in()``."""
        return await self._run(self._wrapped.current_in)

    async def reset(self) -> None:
        """As the wrapped store's ``reset()``."""
        await self._run(self._wrapped.reset)

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
        await self._run(self._wrapped.set_next_out, seq_num)

    async def set_next_in(self, seq_num: int) -> None:
        """As the wrapped store's ``set_next_in(seq_num)``."""
        await self._run(self._wrapped.set_next_in, seq_num)

    async def snapshot(self) -> SeqState:
        """As the wrapped store's ``snapshot()``."""
        return await self._run(self._wrapped.snapshot)

    async def creation_time(self) -> datetime.datetime:
        """As the wrapped store's ``creation_time()``."""
        return await self._run(self._wrapped.creation_time)

    async def aclose(self) -> None:
        """Close the store (and its twin); a second call does nothing.

        Shielded from cancellation, so a cancelled task still releases the
        store's file lock or connection.
        """
        with anyio.CancelScope(shield=True):
            await self._run(self._wrapped.close)

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
