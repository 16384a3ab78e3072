"""The one counter core: both counters behind one lock, validation, closed state.

Every store is a [`SeqCounters`][fixseq.SeqCounters]. The memory store is the core as it is;
a durable store overrides two hooks, `SeqCounters._persist` (make a new
state durable, called with the lock held *before* the change becomes visible,
so a caller never has a number whose advance is not durable) and
`SeqCounters._release` (give back the file or connection on close). No
store re-implements the arithmetic, the validation, the exhaustion limit or
the closed and failed states: they live here, once.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, ClassVar, NoReturn

from ._forks import keep_forever, register_open, unregister_open
from ._protocols import MAX_SEQ_NUM, SeqState
from ._rules import (
    check_created_at,
    check_reserve,
    check_seq_num,
    utc_now,
)
from .errors import (
    SeqNumExhaustedError,
    StoreClosedError,
    StoreForkedError,
    StoreIOError,
)

if TYPE_CHECKING:
    import datetime
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["SeqCounters"]


class _NoLock:
    """A context manager that locks nothing (the counter lock of a shared store)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_LOCK = _NoLock()


class SeqCounters:
    """A session's two sequence counters, guarded by one ``threading.Lock``.

    This is the core every store is built on. Used on its own (or as
    [`MemorySeqStore`][fixseq.MemorySeqStore]) it keeps the counters in memory only.

    Args:
        next_out: The first MsgSeqNum to hand out, in ``1..MAX_SEQ_NUM``.
        next_in: The first inbound MsgSeqNum expected, in ``1..MAX_SEQ_NUM``.
        created_at: The creation time to report (aware); ``None`` means now.

    Raises:
        TypeError: A seed is not an ``int``, or ``created_at`` is not a datetime.
        InvalidSeqNumError: A seed is outside ``1..MAX_SEQ_NUM``.
        ValueError: ``created_at`` is naive.

    Every method is safe to call from any number of threads. (A shared
    store, whose backend holds the truth, does not hold this lock across its
    backend calls: concurrent calls reach the store together and share a
    commit.) After [`close`][fixseq.SeqCounters.close], every method but
    ``close`` raises [`StoreClosedError`][fixseq.StoreClosedError].
    """

    #: True for a store whose `_persist` makes each change durable.
    _durable: ClassVar[bool] = False
    #: True for a store whose backend holds the truth and applies each change
    #: itself (`_apply`), because other processes share it.
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
        # The same for a durable store's own path in next_out(): below this
        # limit the store is open, has not failed and the number exists.
        self._durable_limit = MAX_SEQ_NUM + 1 if self._durable else 0
        # Group commit (durable stores): a change is applied in memory under
        # _lock and numbered; its caller then waits until a write covering that
        # number has completed. One caller at a time (_writing) writes the
        # newest state, outside _lock, for everyone queued behind it. Callers
        # sleep on one of two conditions over _lock, by the write that will
        # cover them: the write in flight (number _claims) or the next one.
        # When a write ends, all it covered wake at once and return, and just
        # one of the others wakes to write next: its write covers the rest.
        self._sleepers = (threading.Condition(self._lock), threading.Condition(self._lock))
        self._asleep = [0, 0]  # sleepers per condition (a lone writer skips notify)
        self._claims = 0
        self._writing = False
        self._changes = 0
        self._durable_changes = 0
        # Outbound reservation: the next_out value last handed to _persist,
        # never below _next_out; with reserve K it runs up to K - 1 ahead, so
        # K numbers cost one write. _reserve_ticket is the change that wrote it.
        self._reserve = 1
        self._stored_out = next_out
        self._reserve_ticket = 0
        # The state the writer-lock holder is about to write, with the last
        # change it covers (see _lead and _write_claimed).
        self._claimed = (0, next_out, next_in, created)
        if self._shared:
            self._init_shared()
        # The process that opened the store: the only one it serves (see _mark_forked).
        self._pid = os.getpid()
        self._forked = False
        register_open(self)

    # -- hooks for durable stores -------------------------------------------

    def _persist(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        """Make this state durable before any caller whose change it covers returns.

        A durable store overrides this and sets ``_durable = True``. Calls are
        serialized (one at a time, under the store's writer lock, never under
        the counter lock) and always carry the newest state, which may cover
        several callers' changes at once (group commit). With a reservation,
        ``next_out`` may be ahead of the in-memory counter. Raising anything
        fail-stops the store: no caller waiting on this write gets its result,
        and every later call raises [`StoreIOError`][fixseq.StoreIOError] until the
        store is reopened.
        """

    def _release(self) -> None:
        """Give back what the store holds (a file, a connection); called once by close()."""

    def _after_fork_in_child(self) -> None:
        """In a forked child, let go of what only the parent may use (a file descriptor).

        Called once, by the child's at-fork hook, after the core has made every call
        raise [`StoreForkedError`][fixseq.StoreForkedError]. It must send nothing on
        and close nothing the parent still uses (a database connection), must not
        take a lock (a thread of the parent may have held it at the fork) and must
        not raise. The store object itself is never deallocated in the child.
        """

    def _mark_forked(self) -> None:
        """Make this inherited copy refuse every call (in a forked child, one thread)."""
        self._forked = True
        self._fast_limit = self._durable_limit = 0  # every call takes the checked path
        self._failure = StoreForkedError(self._forked_message())
        # Fresh locks and no write in flight: the parent's threads are not here.
        if self._shared:
            self._shared_cond = threading.Condition(threading.Lock())
            self._block_lock = threading.Lock()
            self._in_flight = 0
        else:
            self._lock = threading.Lock()
            self._sleepers = (threading.Condition(self._lock), threading.Condition(self._lock))
            self._asleep = [0, 0]
            self._writing = False
        keep_forever(self)
        try:
            self._after_fork_in_child()
        except Exception:  # pragma: no cover - an at-fork hook must not raise
            pass

    def _forked_message(self) -> str:
        return (
            f"{type(self).__name__} was opened in process {self._pid} and cannot be used in "
            f"process {os.getpid()}, a fork() of it: the copy would hand out the numbers the "
            "opener hands out, so every call here raises and close() here writes nothing; "
            "open a new store in this process"
        )

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
        """Let next_out hand out ``reserve`` numbers per durable write (or per backend call).

        Raises:
            TypeError: ``reserve`` is not an ``int``.
            InvalidSeqNumError: ``reserve`` is outside ``1..MAX_SEQ_NUM`` (see `check_reserve`).
        """
        self._reserve = check_reserve(reserve)

    def _apply(self, op: str, seq_num: int) -> tuple[int, int, datetime.datetime] | None:
        """Shared stores only: do ``op`` atomically in the backend and return the new state.

        A store whose backend other processes change too (SQLite, PostgreSQL)
        sets ``_shared = True`` and keeps no counter of its own: every call is
        one atomic operation in the backend, run after the core has validated
        ``seq_num`` and checked the store is open. The core holds no lock
        around it, so concurrent calls on one store reach the store together
        and it can commit them as a group; the store serialises the use of its
        connection itself. ``op`` is one of ``"read"``, ``"next_out"``
        (advance by ``seq_num`` numbers at once: 1, or the reservation
        block), ``"observed_in"`` (raise the inbound mark to ``seq_num + 1``
        if that is higher), ``"reset"``, ``"set_next_out"`` and
        ``"set_next_in"``. Return ``(next_out, next_in, created)`` after the
        operation, or ``None`` from ``"next_out"`` when fewer than ``seq_num``
        numbers are left below ``MAX_SEQ_NUM + 1`` (nothing changed). An
        exception propagates to the caller and does not stop the store (the
        backend, not this process, holds the truth).
        """
        raise NotImplementedError

    def _give_back(self, reserved_end: int, next_out: int) -> None:
        """Shared stores with a reservation: return its unused numbers on close.

        Set the stored next_out to ``next_out`` only if it still is
        ``reserved_end`` (compare-and-set): if another store advanced the
        counter since, leave it alone (the unused numbers stay a gap, never
        reused).
        """
        raise NotImplementedError

    def _block_moved(self, block_end: int) -> bool:
        """Shared stores with a reservation: has the row moved under our block?

        Called by a ``next_out`` (or a read) that found a block
        ``[..., block_end)`` in memory, after the call began and before it hands
        out a number from the block: True if the stored next_out is no longer
        ``block_end`` as this store reserved it (another process ran
        ``set_next_out`` or ``reset``, even to the value the row already
        held), so the block must be dropped and the store reserve again from
        the row. The default trusts no block: a store that cannot tell serves
        every number from the backend. Errors propagate to the caller.
        """
        return True

    # -- the shared path (no counter lock: the backend holds the truth) -----------

    def _init_shared(self) -> None:
        # The counter lock guards nothing of a shared store's that a call needs
        # while it runs in the backend: it becomes a no-op, so concurrent calls
        # reach _apply together and the store can commit them as one group.
        # _shared_cond guards the closed state, the calls in flight (close waits for
        # them) and the reservation block [_block_next, _block_end).
        self._lock = _NO_LOCK  # type: ignore[assignment]
        self._shared_cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._block_next = self._block_end = 0
        self._block_lock = threading.Lock()  # one refill (or exact write) at a time

    def _enter_shared(self) -> None:
        with self._shared_cond:
            if self._closed:
                self._raise_unusable()
            self._in_flight += 1

    def _leave_shared(self) -> None:
        with self._shared_cond:
            self._in_flight -= 1
            if self._in_flight == 0 and self._closed:
                self._shared_cond.notify_all()

    def _shared_apply(self, op: str, seq_num: int) -> tuple[int, int, datetime.datetime]:
        self._enter_shared()
        try:
            state = self._apply_checked(op, seq_num)
        finally:
            self._leave_shared()
        self._next_out, self._next_in, self._created = state  # last seen, for repr only
        return state

    def _shared_read(self) -> tuple[int, int, datetime.datetime]:
        next_out, next_in, created = self._shared_apply("read", 0)
        with self._shared_cond:
            block = (self._block_next, self._block_end)
        if block[0] < block[1] and not self._checked_block_moved(block[1]):
            next_out = block[0]  # the backend holds our block's end, still ours
        return next_out, next_in, created

    def _checked_block_moved(self, block_end: int) -> bool:
        self._enter_shared()
        try:
            return self._block_moved(block_end)
        finally:
            self._leave_shared()

    def _next_from_block(self) -> int | None:
        """The next number of our block if the row still holds it; None: reserve again."""
        while True:
            with self._shared_cond:
                if self._closed:
                    self._raise_unusable()
                if self._block_next >= self._block_end:
                    return None
                end = self._block_end
            # Asked after this call began: a live set or reset that returned
            # before it is seen here, and the block is not used past it.
            moved = self._checked_block_moved(end)
            with self._shared_cond:
                if self._block_end != end:
                    continue  # another thread refilled or dropped it: look again
                if self._block_next >= end:
                    return None
                if moved:
                    # Its unused numbers are now the row's to give (or a gap),
                    # never ours: nothing is given back for them.
                    self._block_next = self._block_end = 0
                    return None
                self._block_next += 1
                return self._block_next - 1

    def _shared_change(self, op: str, seq_num: int) -> int:
        if self._reserve == 1:
            if op == "next_out":
                return self._shared_apply(op, 1)[0] - 1
            self._shared_apply(op, seq_num)
            return 0
        if op == "next_out":
            # From the block in memory, after one cheap question to the backend.
            taken = self._next_from_block()
            if taken is not None:
                return taken
        if op not in ("next_out", "reset", "set_next_out"):
            self._shared_apply(op, seq_num)
            return 0
        with self._block_lock:
            if op != "next_out":
                with self._shared_cond:
                    # An exact value ends the block; its unused numbers are
                    # overwritten by the exact value itself.
                    self._block_next = self._block_end = 0
                self._shared_apply(op, seq_num)
                return 0
            taken = self._next_from_block()  # refilled while we waited?
            if taken is not None:
                return taken
            count = self._reserve
            self._enter_shared()
            try:
                state = self._apply(op, count)
                if state is None:  # fewer than a block left: take them one at a time
                    count = 1
                    state = self._apply_checked(op, count)
                first = state[0] - count
                with self._shared_cond:
                    # Still in flight: a close() waiting for us then sees this block
                    # and gives its unused numbers back.
                    self._block_next, self._block_end = first + 1, state[0]
            finally:
                self._leave_shared()
            self._next_out, self._next_in, self._created = state
            return first

    def _close_shared(self) -> None:
        with self._shared_cond:
            if self._closed:
                return
            self._closed = True
            self._fast_limit = 0
            # Calls already in the backend finish first (they may share the
            # connection with other stores' calls); new ones see the store closed.
            while self._in_flight:
                self._shared_cond.wait()
            block = (self._block_end, self._block_next)
            self._block_next = self._block_end = 0
        try:
            if block[1] < block[0]:
                self._give_back(*block)
        finally:
            self._release()

    # -- internals (lock held) -----------------------------------------------

    def _raise_unusable(self) -> NoReturn:
        if self._forked:
            raise StoreForkedError(self._forked_message())
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
                return self._shared_read()
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
        wait for with `_wait_durable` after releasing the lock (0: none).
        """
        if self._closed or self._failure is not None:
            self._raise_unusable()
        if self._shared:
            return self._shared_change(op, seq_num), 0
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
            # A block never reaches past the last number there is: a stored
            # next_out beyond MAX_SEQ_NUM + 1 is no state a store can hold.
            self._stored_out = min(next_out + self._reserve - 1, MAX_SEQ_NUM + 1)
        elif op in ("reset", "set_next_out"):
            self._stored_out = next_out  # an exact value ends any reservation
        self._changes += 1
        if op != "observed_in" and op != "set_next_in":
            self._reserve_ticket = self._changes
        return next_out - 1, self._changes

    def _begin(self, op: str, seq_num: int) -> tuple[int, int]:
        """Apply one change now and return ``(number, ticket)`` without writing.

        For callers that wait for durability elsewhere (the async twins, on
        their event loop's thread): the counter lock is held for the in-memory
        change only, and a durable store's ``_change`` does no I/O. The change
        is durable once ``_durable_changes >= ticket``; `_wait_durable`
        (in a worker thread) makes it so. ``seq_num`` must be validated already.
        """
        with self._lock:
            return self._change(op, seq_num)

    def _lead(self, ticket: int) -> bool:
        """Become the writer for change ``ticket`` if no write is in flight (lock held).

        The writer claims the newest state now, under the counter lock, so a
        lone caller takes that lock only once before it writes.

        Raises:
            StoreIOError: The store stopped after a failed write.
            StoreClosedError: The store is closed.
        """
        if self._writing:
            return False  # its end may still cover us (a close's flush too)
        if self._failure is not None or self._closed:
            self._raise_unusable()
        self._writing = True
        self._claims += 1
        self._claimed = (self._changes, self._stored_out, self._next_in, self._created)
        return True

    def _sleep(self, covered: bool) -> None:
        """Sleep until the write in flight ends (``covered``) or it is our turn (lock held)."""
        side = (self._claims + (not covered)) & 1
        self._asleep[side] += 1
        try:
            self._sleepers[side].wait()
        finally:
            self._asleep[side] -= 1

    def _end_write(self, failed: bool) -> None:
        """Wake those the write that ended covered, and one to write next (lock held)."""
        self._writing = False
        side = self._claims & 1
        if self._asleep[side]:
            self._sleepers[side].notify_all()
        if self._asleep[side ^ 1]:
            if failed:
                self._sleepers[side ^ 1].notify_all()  # every one of them must raise
            else:
                self._sleepers[side ^ 1].notify()

    def _await_turn(self, ticket: int) -> bool:
        """Wait until change ``ticket`` is durable (False) or it is ours to write (True).

        Lock held (released while asleep). A caller returning True must call
        `_write_claimed` after releasing the lock.

        Raises:
            StoreIOError: The store stopped after a failed write before the change was written.
            StoreClosedError: The store was closed and the change was never written.
        """
        while ticket > self._durable_changes:
            if self._lead(ticket):
                return True
            self._sleep(ticket <= self._claimed[0])
        return False

    def _write_claimed(self) -> None:
        """Write the state claimed in `_lead` (lock NOT held), then wake the waiters."""
        upto, next_out, next_in, created = self._claimed
        try:
            self._persist(next_out, next_in, created)
        except BaseException as exc:
            with self._lock:
                self._failure = exc
                self._fast_limit = self._durable_limit = 0
                self._end_write(failed=True)
            raise
        with self._lock:
            self._durable_changes = upto
            self._end_write(failed=False)

    def _wait_durable(self, ticket: int) -> None:
        """Return once a write covering change ``ticket`` has completed (lock NOT held).

        The first caller to find no write in flight writes the newest state,
        which covers every change made so far; the others sleep until it is
        done, then return if it covered them, or one of them writes next. A
        lone caller writes at once: no timer, no sleep. Safe to run in a worker
        thread for an event loop's callers (the async twins do).

        Raises:
            StoreIOError: The write failed (this one, or an earlier one: the
                store has stopped).
            StoreClosedError: The store was closed and the change was never written.
        """
        with self._lock:
            lead = self._await_turn(ticket)
        if lead:
            self._write_claimed()

    # -- the SeqStore protocol ------------------------------------------------

    def next_out(self) -> int:
        """Return the MsgSeqNum for the next outbound message and advance by one.

        Two concurrent callers never get the same number. A durable store
        returns the number only after the advance past it is durable.

        Returns:
            The MsgSeqNum to stamp on the message, in ``1..MAX_SEQ_NUM``.

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
            if seq_num < self._durable_limit:
                # A durable store's everyday call: _change("next_out") inlined,
                # and the caller becomes the writer at once if no write is in
                # flight, so a lone caller takes the counter lock once before
                # its write.
                self._next_out = seq_num + 1
                if seq_num < self._stored_out:
                    # Inside a block an earlier write reserved.
                    ticket = self._reserve_ticket
                    if ticket <= self._durable_changes:
                        return seq_num  # and that write is durable: nothing to wait for
                else:
                    stored = seq_num + self._reserve  # (capped as in _change)
                    self._stored_out = stored if stored <= MAX_SEQ_NUM else MAX_SEQ_NUM + 1
                    self._changes = self._reserve_ticket = ticket = self._changes + 1
                if self._writing:
                    lead = self._await_turn(ticket)
                else:  # _lead() inlined: no write in flight, we write (the store is open)
                    self._writing = True
                    self._claims += 1
                    self._claimed = (self._changes, self._stored_out, self._next_in, self._created)
                    lead = True
            else:
                seq_num, ticket = self._change("next_out", 0)
                if ticket <= self._durable_changes:
                    return seq_num
                lead = self._await_turn(ticket)
        if lead:
            self._write_claimed()
        return seq_num

    def peek_out(self) -> int:
        """Return the number ``next_out()`` would return, without advancing.

        After ``MAX_SEQ_NUM`` was handed out this is ``MAX_SEQ_NUM + 1``.

        Returns:
            The next outbound MsgSeqNum, in ``1..MAX_SEQ_NUM + 1``.

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

        Args:
            seq_num: The MsgSeqNum of an inbound message the application has
                taken, in ``1..MAX_SEQ_NUM``.

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is outside ``1..MAX_SEQ_NUM``.
            StoreClosedError: The store is closed.
            StoreIOError: The advance could not be made durable.
        """
        seq_num = check_seq_num(seq_num)
        with self._lock:
            ticket = self._change("observed_in", seq_num)[1]
            if ticket <= self._durable_changes:
                return
            lead = self._await_turn(ticket)
        if lead:
            self._write_claimed()

    def current_in(self) -> int:
        """Return the next expected inbound MsgSeqNum.

        Returns:
            The next expected inbound MsgSeqNum, in ``1..MAX_SEQ_NUM + 1``.

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
            if ticket <= self._durable_changes:
                return
            lead = self._await_turn(ticket)
        if lead:
            self._write_claimed()

    # -- the admin methods ----------------------------------------------------

    def set_next_out(self, seq_num: int) -> None:
        """Make ``seq_num`` the next outbound number, in either direction.

        An operator's override for manual recovery (QuickFIX's
        ``setNextSenderMsgSeqNum``). The creation time is left alone.

        Args:
            seq_num: The next outbound MsgSeqNum, in ``1..MAX_SEQ_NUM``.

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is outside ``1..MAX_SEQ_NUM``.
            StoreClosedError: The store is closed.
            StoreIOError: The change could not be made durable.
        """
        seq_num = check_seq_num(seq_num)
        with self._lock:
            ticket = self._change("set_next_out", seq_num)[1]
            if ticket <= self._durable_changes:
                return
            lead = self._await_turn(ticket)
        if lead:
            self._write_claimed()

    def set_next_in(self, seq_num: int) -> None:
        """Make ``seq_num`` the next expected inbound number, in either direction.

        An operator's override (QuickFIX's ``setNextTargetMsgSeqNum``). The
        creation time is left alone.

        Args:
            seq_num: The next expected inbound MsgSeqNum, in ``1..MAX_SEQ_NUM``.

        Raises:
            TypeError: ``seq_num`` is not an ``int``.
            InvalidSeqNumError: ``seq_num`` is outside ``1..MAX_SEQ_NUM``.
            StoreClosedError: The store is closed.
            StoreIOError: The change could not be made durable.
        """
        seq_num = check_seq_num(seq_num)
        with self._lock:
            ticket = self._change("set_next_in", seq_num)[1]
            if ticket <= self._durable_changes:
                return
            lead = self._await_turn(ticket)
        if lead:
            self._write_claimed()

    def snapshot(self) -> SeqState:
        """Return both counters, read together atomically.

        Returns:
            ``SeqState(next_out, next_in)``, as [`peek_out`][fixseq.SeqCounters.peek_out]
            and [`current_in`][fixseq.SeqCounters.current_in] would return them.

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

        Returns:
            A timezone-aware ``datetime`` in UTC.

        Raises:
            StoreClosedError: The store is closed.
        """
        with self._lock:
            return self._read()[2]

    # -- lifetime ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once [`close`][fixseq.SeqCounters.close] was called (on this store or its twin)."""
        return self._closed

    def close(self) -> None:
        """Close the store and release what it holds; a second call does nothing.

        A store that fail-stopped after an I/O error can still be closed. After
        close every other method raises [`StoreClosedError`][fixseq.StoreClosedError].
        """
        if self._forked:
            # A forked child's copy: write nothing, release nothing (the file lock,
            # the connection and the -shm mapping are still the opener's).
            self._closed = True
            return None
        unregister_open(self)
        if self._shared:
            return self._close_shared()
        with self._lock:
            while self._writing:  # no write in flight while we close
                self._sleep(covered=True)
            if self._closed:
                return
            self._closed = True
            self._fast_limit = self._durable_limit = 0
            exact = (self._next_out, self._next_in, self._created)
            flush = (
                self._durable
                and self._failure is None
                and (self._changes > self._durable_changes or self._stored_out != self._next_out)
            )
            upto = self._changes
            if flush:  # sleepers wait for this write as for any other
                self._writing = True
                self._claims += 1
                self._claimed = (upto, *exact)
        try:
            if flush:
                # Cover changes still queued, and write the exact next_out so a
                # clean restart shows no reservation gap.
                try:
                    self._persist(*exact)
                except BaseException as exc:
                    with self._lock:
                        self._failure = exc
                        self._end_write(failed=True)
                    raise
                with self._lock:
                    self._durable_changes = upto
                    self._stored_out = exact[0]
                    self._end_write(failed=False)
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
