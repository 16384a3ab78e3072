"""The one counter core: both counters behind one lock, validation, closed state.

Every store is a :class:`SeqCounters`. The memory store is the core as it is;
a durable store overrides two hooks, :meth:`SeqCounters._persist` (make a new
state durable, called with the lock held *before* the change becomes visible,
so a caller never has a number whose advance is not durable) and
:meth:`SeqCounters._release` (give back the file or connection on close). No
store re-implements the arithmetic, the validation, the exhaustion limit or
the closed and failed states: they live here, once.
"""

from __future__ import annotations

import datetime
import threading
from typing import TYPE_CHECKING, ClassVar, NoReturn

from ._protocols import MAX_SEQ_NUM, SeqState
from .errors import (
    InvalidSeqNumError,
    SeqNumExhaustedError,
    StoreClosedError,
    StoreIOError,
)

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["SeqCounters", "check_seq_num", "check_session_name", "utc_now"]

_UTC = datetime.timezone.utc


def utc_now() -> datetime.datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.datetime.now(_UTC)


def check_seq_num(value: object, name: str = "seq_num", *, limit: int = MAX_SEQ_NUM) -> int:
    """Return ``value`` if it is an ``int`` in ``1..limit``.

    Raises:
        TypeError: ``value`` is not an ``int`` (a ``bool``, a float and a str are not).
        InvalidSeqNumError: ``value`` is below 1 or above ``limit``.
    """
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        value = int(value)
    if not 1 <= value <= limit:
        raise InvalidSeqNumError(f"{name} must be in 1..{limit}, got {value}")
    return value


def check_session_name(value: object, name: str = "session") -> str:
    """Return ``value`` as a plain ``str`` if it can name a session in any store.

    Any non-empty unicode text is a session name, of any length: a FIX session
    id such as ``"FIX.4.4:BANK->BROKER"``, quotes, emoji. Stores keep it exactly
    (no case folding, no normalization) and reach SQL with it only as a bound
    parameter.

    Raises:
        TypeError: ``value`` is not a ``str``.
        ValueError: ``value`` is empty, contains NUL (which SQL text and C
            strings truncate at) or a lone surrogate (which has no UTF-8 form).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    value = str.__str__(value)  # a str subclass could compare or hash differently
    if not value:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL (\\x00)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid unicode text (a lone surrogate)") from None
    return value


def check_created_at(value: object) -> datetime.datetime:
    """Return ``value`` as an aware UTC datetime.

    Raises:
        TypeError: ``value`` is not a ``datetime.datetime``.
        ValueError: ``value`` is naive (has no timezone).
    """
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"created_at must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware; a naive datetime is ambiguous")
    return value.astimezone(_UTC)


class SeqCounters:
    """A session's two sequence counters, guarded by one ``threading.Lock``.

    This is the core every store is built on. Used on its own (or as
    :class:`~fixseq.MemorySeqStore`) it keeps the counters in memory only.

    Args:
        next_out: The first MsgSeqNum to hand out, in ``1..MAX_SEQ_NUM``.
        next_in: The first inbound MsgSeqNum expected, in ``1..MAX_SEQ_NUM``.
        created_at: The creation time to report (aware); ``None`` means now.

    Raises:
        TypeError: A seed is not an ``int``, or ``created_at`` is not a datetime.
        InvalidSeqNumError: A seed is outside ``1..MAX_SEQ_NUM``.
        ValueError: ``created_at`` is naive.

    Every method is safe to call from any number of threads. After
    :meth:`close`, every method but ``close`` raises
    :class:`~fixseq.StoreClosedError`.
    """

    #: True for a store whose :meth:`_persist` makes each change durable.
    _durable: ClassVar[bool] = False
    #: True for a store whose backend holds the truth and applies each change
    #: itself (:meth:`_apply`), because other processes share it.
    _shared: ClassVar[bool] = False

    def __init__(
        self,
        next_out: int = 1,
        next_in: int = 1,
        *,
        created_at: datetime.datetime | None = None,
    ) -> None:
        next_out = check_seq_num(next_out, "next_out")
        next_in = check_seq_num(next_in, "next_in")
        created = utc_now() if created_at is None else check_created_at(created_at)
        self._lock = threading.Lock()
        self._next_out = next_out
        self._next_in = next_in
        self._created = created
        self._closed = False
        self._failure: BaseException | None = None
        # next_out() takes its one-comparison fast path while the number is
        # below this limit; 0 sends every call down the checked slow path
        # (closed, failed, or a durable store that must persist first).
        self._fast_limit = 0 if (self._durable or self._shared) else MAX_SEQ_NUM + 1
        # Group commit (durable stores): a change is applied in memory under
        # _lock and numbered; its caller then waits, outside _lock, until a
        # write covering that number has completed. _write_lock lets one
        # caller at a time write the newest state for everyone queued behind it.
        self._write_lock = threading.Lock()
        self._changes = 0
        self._durable_changes = 0
        # Outbound reservation: the next_out value last handed to _persist,
        # never below _next_out; with reserve K it runs up to K - 1 ahead, so
        # K numbers cost one write. _reserve_ticket is the change that wrote it.
        self._reserve = 1
        self._stored_out = next_out
        self._reserve_ticket = 0

    # -- hooks for durable stores -------------------------------------------

    def _persist(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        """Make this state durable before any caller whose change it covers returns.

        A durable store overrides this and sets ``_durable = True``. Calls are
        serialized (one at a time, under the store's writer lock, never under
        the counter lock) and always carry the newest state, which may cover
        several callers' changes at once (group commit). With a reservation,
        ``next_out`` may be ahead of the in-memory counter. Raising anything
        fail-stops the store: no caller waiting on this write gets its result,
        and every later call raises :class:`~fixseq.StoreIOError` until the
        store is reopened.
        """

    def _release(self) -> None:
        """Give back what the store holds (a file, a connection); called once by close()."""

    def _restore(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        """Load a state read back from durable storage (next_out may be MAX_SEQ_NUM + 1).

        Raises:
            InvalidSeqNumError: A counter is outside ``1..MAX_SEQ_NUM + 1``.
            ValueError: ``created`` is naive.
        """
        next_out = check_seq_num(next_out, "next_out", limit=MAX_SEQ_NUM + 1)
        next_in = check_seq_num(next_in, "next_in", limit=MAX_SEQ_NUM + 1)
        created = check_created_at(created)
        with self._lock:
            self._next_out, self._next_in, self._created = next_out, next_in, created
            self._stored_out = next_out

    def _set_reserve(self, reserve: object) -> None:
        """Let next_out hand out ``reserve`` numbers per durable write (single-writer stores).

        Raises:
            TypeError: ``reserve`` is not an ``int``.
            ValueError: ``reserve`` is below 1.
        """
        if type(reserve) is not int:
            raise TypeError(f"reserve must be an int, not {type(reserve).__name__}")
        if reserve < 1:
            raise ValueError(f"reserve must be at least 1, got {reserve}")
        self._reserve = reserve

    def _apply(self, op: str, seq_num: int) -> tuple[int, int, datetime.datetime] | None:
        """Shared stores only: do ``op`` atomically in the backend and return the new state.

        A store whose backend other processes change too (SQLite, PostgreSQL)
        sets ``_shared = True`` and keeps no counter of its own: every call is
        one atomic operation in the backend, run here with the lock held, after
        the core has validated ``seq_num`` and checked the store is open. ``op``
        is one of ``"read"``, ``"next_out"`` (advance by one), ``"observed_in"``
        (raise the inbound mark to ``seq_num + 1`` if that is higher),
        ``"reset"``, ``"set_next_out"`` and ``"set_next_in"``. Return
        ``(next_out, next_in, created)`` after the operation, or ``None`` from
        ``"next_out"`` when the counter is already past ``MAX_SEQ_NUM``. An
        exception propagates to the caller and does not stop the store (the
        backend, not this process, holds the truth).
        """
        raise NotImplementedError

    # -- internals (lock held) -----------------------------------------------

    def _raise_unusable(self) -> NoReturn:
        if self._closed:
            raise StoreClosedError(f"{type(self).__name__} is closed")
        raise StoreIOError(
            f"{type(self).__name__} failed to make a change durable earlier and refuses "
            "every call until it is closed and opened again"
        ) from self._failure

    def _read(self) -> tuple[int, int, datetime.datetime]:
        if self._fast_limit == 0:
            if self._closed or self._failure is not None:
                self._raise_unusable()
            if self._shared:
                self._next_out, self._next_in, self._created = self._apply_checked("read", 0)
        return self._next_out, self._next_in, self._created

    def _apply_checked(self, op: str, seq_num: int) -> tuple[int, int, datetime.datetime]:
        state = self._apply(op, seq_num)
        if state is None:
            raise SeqNumExhaustedError(
                f"next_out would pass MAX_SEQ_NUM ({MAX_SEQ_NUM}); reset() or set_next_out() first"
            )
        return state

    def _change(self, op: str, seq_num: int) -> tuple[int, int]:
        """Apply one change (lock held).

        Returns the number ``next_out`` hands out and the ticket the caller must
        wait for with :meth:`_wait_durable` after releasing the lock (0: none).
        """
        if self._closed or self._failure is not None:
            self._raise_unusable()
        if self._shared:
            next_out, next_in, created = self._apply_checked(op, seq_num)
            self._next_out, self._next_in, self._created = next_out, next_in, created
            return next_out - 1, 0
        next_out, next_in, created = self._next_out, self._next_in, self._created
        if op == "next_out":
            if next_out > MAX_SEQ_NUM:
                raise SeqNumExhaustedError(
                    f"next_out would pass MAX_SEQ_NUM ({MAX_SEQ_NUM}); "
                    "reset() or set_next_out() first"
                )
            next_out += 1
        elif op == "observed_in":
            if seq_num < next_in:
                return next_out - 1, 0  # already covered: nothing to write
            next_in = seq_num + 1
        elif op == "reset":
            next_out, next_in, created = 1, 1, utc_now()
        elif op == "set_next_out":
            next_out = seq_num
        elif op == "set_next_in":
            next_in = seq_num
        else:  # pragma: no cover - internal misuse
            raise AssertionError(op)
        self._next_out, self._next_in, self._created = next_out, next_in, created
        if not self._durable:
            return next_out - 1, 0
        if op == "next_out":
            if next_out <= self._stored_out:
                # Inside the block an earlier write reserved: durable once it is.
                return next_out - 1, self._reserve_ticket
            self._stored_out = next_out + self._reserve - 1
        elif op in ("reset", "set_next_out"):
            self._stored_out = next_out  # an exact value ends any reservation
        self._changes += 1
        if op != "observed_in" and op != "set_next_in":
            self._reserve_ticket = self._changes
        return next_out - 1, self._changes

    def _wait_durable(self, ticket: int) -> None:
        """Return once a write covering change ``ticket`` has completed (lock NOT held).

        The first caller to take the writer lock writes the newest state, which
        covers every change made so far; those queued behind it find their
        change covered and return without writing. A lone caller writes at
        once: no timer, no sleep.
        """
        with self._write_lock:
            if self._durable_changes >= ticket:
                return
            with self._lock:
                if self._failure is not None or self._closed:
                    self._raise_unusable()
                upto = self._changes
                state = (self._stored_out, self._next_in, self._created)
            try:
                self._persist(*state)
            except BaseException as exc:
                with self._lock:
                    self._failure = exc
                    self._fast_limit = 0
                raise
            self._durable_changes = upto

    # -- the SeqStore protocol ------------------------------------------------

    def next_out(self) -> int:
        """Return the MsgSeqNum for the next outbound message and advance by one.

        Two concurrent callers never get the same number. A durable store
        returns the number only after the advance past it is durable.

        Raises:
            SeqNumExhaustedError: The number would exceed ``MAX_SEQ_NUM``.
            StoreClosedError: The store is closed.
            StoreIOError: The advance could not be made durable (or an earlier
                change could not, and the store has stopped).
        """
        with self._lock:
            seq_num = self._next_out
            if seq_num < self._fast_limit:
                self._next_out = seq_num + 1
                return seq_num
            seq_num, ticket = self._change("next_out", 0)
        if ticket > self._durable_changes:
            self._wait_durable(ticket)
        return seq_num

    def peek_out(self) -> int:
        """Return the number ``next_out()`` would return, without advancing.

        After ``MAX_SEQ_NUM`` was handed out this is ``MAX_SEQ_NUM + 1``.

        Raises:
            StoreClosedError: The store is closed.
        """
        with self._lock:
            return self._read()[0]

    def observed_in(self, seq_num: int) -> None:
        """Record that the inbound message ``seq_num`` was processed.

        The next expected inbound becomes ``max(current_in(), seq_num + 1)``;
        it never goes down, and a number below the mark changes nothing
        (and writes nothing).

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is outside ``1..MAX_SEQ_NUM``.
            StoreClosedError: The store is closed.
            StoreIOError: The advance could not be made durable.
        """
        seq_num = check_seq_num(seq_num)
        with self._lock:
            ticket = self._change("observed_in", seq_num)[1]
        if ticket > self._durable_changes:
            self._wait_durable(ticket)

    def current_in(self) -> int:
        """Return the next expected inbound MsgSeqNum.

        Raises:
            StoreClosedError: The store is closed.
        """
        with self._lock:
            return self._read()[1]

    def reset(self) -> None:
        """Set both counters to 1 and the creation time to now, in one atomic step.

        This is a Logon with ResetSeqNumFlag=Y, or a scheduled daily reset.

        Raises:
            StoreClosedError: The store is closed.
            StoreIOError: The reset could not be made durable.
        """
        with self._lock:
            ticket = self._change("reset", 0)[1]
        if ticket > self._durable_changes:
            self._wait_durable(ticket)

    # -- the admin methods ----------------------------------------------------

    def set_next_out(self, seq_num: int) -> None:
        """Make ``seq_num`` the next outbound number, in either direction.

        An operator's override for manual recovery (QuickFIX's
        ``setNextSenderMsgSeqNum``). The creation time is left alone.

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is outside ``1..MAX_SEQ_NUM``.
            StoreClosedError: The store is closed.
            StoreIOError: The change could not be made durable.
        """
        seq_num = check_seq_num(seq_num)
        with self._lock:
            ticket = self._change("set_next_out", seq_num)[1]
        if ticket > self._durable_changes:
            self._wait_durable(ticket)

    def set_next_in(self, seq_num: int) -> None:
        """Make ``seq_num`` the next expected inbound number, in either direction.

        An operator's override (QuickFIX's ``setNextTargetMsgSeqNum``). The
        creation time is left alone.

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is outside ``1..MAX_SEQ_NUM``.
            StoreClosedError: The store is closed.
            StoreIOError: The change could not be made durable.
        """
        seq_num = check_seq_num(seq_num)
        with self._lock:
            ticket = self._change("set_next_in", seq_num)[1]
        if ticket > self._durable_changes:
            self._wait_durable(ticket)

    def snapshot(self) -> SeqState:
        """Return both counters, read together atomically.

        Raises:
            StoreClosedError: The store is closed.
        """
        with self._lock:
            next_out, next_in, _ = self._read()
            return SeqState(next_out, next_in)

    def creation_time(self) -> datetime.datetime:
        """Return when these counters were created or last reset, as aware UTC.

        ``reset()`` sets it to now in the same atomic step as the counters;
        ``set_next_out``/``set_next_in`` leave it alone. Engines compare it with
        the start of today's trading session to decide a scheduled reset.

        Raises:
            StoreClosedError: The store is closed.
        """
        with self._lock:
            return self._read()[2]

    # -- lifetime ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (on this store or its twin)."""
        return self._closed

    def close(self) -> None:
        """Close the store and release what it holds; a second call does nothing.

        A store that fail-stopped after an I/O error can still be closed. After
        close every other method raises :class:`~fixseq.StoreClosedError`.
        """
        with self._write_lock:  # no write in flight while we close
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._fast_limit = 0
                exact = (self._next_out, self._next_in, self._created)
                flush = (
                    self._durable
                    and self._failure is None
                    and (
                        self._changes > self._durable_changes or self._stored_out != self._next_out
                    )
                )
            try:
                if flush:
                    # Cover changes still queued, and write the exact next_out so a
                    # clean restart shows no reservation gap.
                    self._persist(*exact)
                    self._durable_changes = self._changes
                    self._stored_out = exact[0]
            except BaseException as exc:
                self._failure = exc
                raise
            finally:
                self._release()

    def __enter__(self) -> Self:
        """Return the store itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"next_out={self._next_out}, next_in={self._next_in}"
        return f"<{type(self).__name__} {state}>"
