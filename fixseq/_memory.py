"""The in-memory store and its async twin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._core import SeqCounters
from ._twins import AsyncAdminShell

if TYPE_CHECKING:
    import datetime

__all__ = ["AsyncMemorySeqStore", "MemorySeqStore"]


class MemorySeqStore(SeqCounters):
    """A session's counters in memory only: the core itself, nothing durable.

    For tests, simulators and sessions that reset on every logon. Safe to share
    between threads. Everything it holds is lost when the process ends.

    Args:
        next_out: The first MsgSeqNum to hand out, in ``1..MAX_SEQ_NUM``.
        next_in: The first inbound MsgSeqNum expected, in ``1..MAX_SEQ_NUM``.
        created_at: The creation time to report (aware); ``None`` means now.

    Raises:
        TypeError: A seed is not an ``int``, or ``created_at`` is not a datetime.
        InvalidSeqNumError: A seed is outside ``1..MAX_SEQ_NUM``.
        ValueError: ``created_at`` is naive.
    """

    def as_async(self) -> AsyncMemorySeqStore:
        """Return the async twin over these same counters.

        Returns:
            An [`AsyncMemorySeqStore`][fixseq.AsyncMemorySeqStore] sharing this store's
            counters and closed state.
        """
        return AsyncMemorySeqStore._over(self)


class AsyncMemorySeqStore(AsyncAdminShell[MemorySeqStore]):
    """The async twin of [`MemorySeqStore`][fixseq.MemorySeqStore], for asyncio and trio.

    Its coroutines call the core directly, without a worker thread: the lock is
    held for nanoseconds, far less than a thread hop. Each is still a
    checkpoint (it yields to the scheduler and can be cancelled, before it
    changes anything), so a task calling in a loop never starves the others. ``as_sync()`` returns a
    [`MemorySeqStore`][fixseq.MemorySeqStore] over the same counters, so threads and an event
    loop can share one session.

    Args:
        next_out: The first MsgSeqNum to hand out, in ``1..MAX_SEQ_NUM``.
        next_in: The first inbound MsgSeqNum expected, in ``1..MAX_SEQ_NUM``.
        created_at: The creation time to report (aware); ``None`` means now.

    Raises:
        TypeError: A seed is not an ``int``, or ``created_at`` is not a datetime.
        InvalidSeqNumError: A seed is outside ``1..MAX_SEQ_NUM``.
        ValueError: ``created_at`` is naive.
    """

    _on_loop = True

    def __init__(
        self,
        next_out: int = 1,
        next_in: int = 1,
        *,
        created_at: datetime.datetime | None = None,
    ) -> None:
        super().__init__(MemorySeqStore(next_out, next_in, created_at=created_at))
