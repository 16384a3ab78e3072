"""The contract: what a sequence store is, as small structural protocols.

Plug-in authors implement these by shape alone (no base class). The
``runtime_checkable`` decorator makes ``isinstance`` check the method *names*
only; whether a store keeps the contract is for the conformance kit
(`fixseq.testing`) to prove.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import datetime
    from types import TracebackType

    from typing_extensions import Self

__all__ = [
    "MAX_SEQ_NUM",
    "AsyncAdminSeqStore",
    "AsyncSeqStore",
    "AdminSeqStore",
    "SeqState",
    "SeqStore",
]

MAX_SEQ_NUM = 2**63 - 1
"""The largest MsgSeqNum a store hands out or accepts.

The counters range over ``1..MAX_SEQ_NUM + 1``: after ``next_out()`` has
returned ``MAX_SEQ_NUM``, ``peek_out()`` is ``MAX_SEQ_NUM + 1`` and every further
``next_out()`` raises ``SeqNumExhaustedError``. A durable store keeps the last
value (next - 1), which always fits a signed 64-bit column.
"""


class SeqState(NamedTuple):
    """Both counters of a session, read together: an immutable pair."""

    next_out: int
    """The MsgSeqNum the next outbound message will carry."""
    next_in: int
    """The next inbound MsgSeqNum expected."""


@runtime_checkable
class SeqStore(Protocol):
    """A session's two sequence counters, blocking API.

    ``isinstance(obj, SeqStore)`` checks the method names only.
    """

    def next_out(self) -> int:
        """Return the MsgSeqNum for the next outbound message and advance by one.

        Two concurrent callers never get the same number. A durable store
        returns only once the advance is durable.

        Returns:
            The MsgSeqNum to stamp on the message, in ``1..MAX_SEQ_NUM``.
        """
        ...

    def peek_out(self) -> int:
        """Return the number ``next_out()`` would return, without advancing.

        Returns:
            The next outbound MsgSeqNum, in ``1..MAX_SEQ_NUM + 1``.
        """
        ...

    def observed_in(self, seq_num: int) -> None:
        """Record that the inbound message ``seq_num`` was processed.

        The next expected inbound becomes ``max(current_in(), seq_num + 1)``:
        it never goes down.

        Args:
            seq_num: The MsgSeqNum of an inbound message the application has
                taken, in ``1..MAX_SEQ_NUM``.
        """
        ...

    def current_in(self) -> int:
        """Return the next expected inbound MsgSeqNum.

        Returns:
            The next expected inbound MsgSeqNum, in ``1..MAX_SEQ_NUM + 1``.
        """
        ...

    def reset(self) -> None:
        """Set both counters back to 1 (a Logon with ResetSeqNumFlag=Y)."""
        ...


@runtime_checkable
class AsyncSeqStore(Protocol):
    """The five methods of [`SeqStore`][fixseq.SeqStore] as coroutines.

    ``isinstance(obj, AsyncSeqStore)`` checks the method names only.
    """

    async def next_out(self) -> int:
        """As [`SeqStore.next_out`][fixseq.SeqStore.next_out]."""
        ...

    async def peek_out(self) -> int:
        """As [`SeqStore.peek_out`][fixseq.SeqStore.peek_out]."""
        ...

    async def observed_in(self, seq_num: int) -> None:
        """As [`SeqStore.observed_in`][fixseq.SeqStore.observed_in]."""
        ...

    async def current_in(self) -> int:
        """As [`SeqStore.current_in`][fixseq.SeqStore.current_in]."""
        ...

    async def reset(self) -> None:
        """As [`SeqStore.reset`][fixseq.SeqStore.reset]."""
        ...


@runtime_checkable
class AdminSeqStore(SeqStore, Protocol):
    """A [`SeqStore`][fixseq.SeqStore] with the operator's methods every built-in store has.

    ``isinstance(obj, AdminSeqStore)`` checks the method names only.
    """

    def set_next_out(self, seq_num: int) -> None:
        """Make ``seq_num`` the next outbound number, in either direction.

        An operator's override (QuickFIX's ``setNextSenderMsgSeqNum``).
        The creation time is left alone.

        Args:
            seq_num: The next outbound MsgSeqNum, in ``1..MAX_SEQ_NUM``.
        """
        ...

    def set_next_in(self, seq_num: int) -> None:
        """Make ``seq_num`` the next expected inbound number, in either direction.

        An operator's override (QuickFIX's ``setNextTargetMsgSeqNum``). The
        creation time is left alone.

        Args:
            seq_num: The next expected inbound MsgSeqNum, in ``1..MAX_SEQ_NUM``.
        """
        ...

    def snapshot(self) -> SeqState:
        """Return both counters, read together atomically.

        Returns:
            ``SeqState(next_out, next_in)``.
        """
        ...

    def creation_time(self) -> datetime.datetime:
        """Return when these counters were created or last reset.

        ``reset()`` sets it in the same atomic step as the counters;
        ``set_next_out``/``set_next_in`` leave it alone.

        Returns:
            A timezone-aware ``datetime`` in UTC.
        """
        ...

    def close(self) -> None:
        """Close the store (and its twin); a second call does nothing."""
        ...

    def __enter__(self) -> Self:
        """Return the store itself."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store."""
        ...


@runtime_checkable
class AsyncAdminSeqStore(AsyncSeqStore, Protocol):
    """An [`AsyncSeqStore`][fixseq.AsyncSeqStore] with the operator's methods, as coroutines.

    ``isinstance(obj, AsyncAdminSeqStore)`` checks the method names only.
    """

    async def set_next_out(self, seq_num: int) -> None:
        """As [`AdminSeqStore.set_next_out`][fixseq.AdminSeqStore.set_next_out]."""
        ...

    async def set_next_in(self, seq_num: int) -> None:
        """As [`AdminSeqStore.set_next_in`][fixseq.AdminSeqStore.set_next_in]."""
        ...

    async def snapshot(self) -> SeqState:
        """As [`AdminSeqStore.snapshot`][fixseq.AdminSeqStore.snapshot]."""
        ...

    async def creation_time(self) -> datetime.datetime:
        """As [`AdminSeqStore.creation_time`][fixseq.AdminSeqStore.creation_time]."""
        ...

    async def aclose(self) -> None:
        """As [`AdminSeqStore.close`][fixseq.AdminSeqStore.close]."""
        ...

    async def __aenter__(self) -> Self:
        """Return the store itself."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store."""
        ...
