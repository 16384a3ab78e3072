"""Group commit for the shared stores: one leader runs every queued call in one batch.

A :class:`Batcher` takes calls from any number of threads. The first caller
to find it idle becomes the leader and runs its own call at once (a lone
caller waits for nothing: no timer, no sleep); callers that arrive while a
batch is running queue up, and when it ends the first of them leads the next
batch, which holds every call queued meanwhile. The store decides what a batch
is (one SQLite transaction, one PostgreSQL round trip) and hands each call its
own result or its own exception; an exception from the batch as a whole
(a failed commit) goes to every call in it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    """One queued call: its item, and where the leader leaves its outcome."""

    __slots__ = ("error", "item", "lead", "result", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.lead = False
        # A plain lock taken at once and released by whoever has news for us:
        # cheaper to wait on than an Event (no Condition underneath).
        self.wake = threading.Lock()
        self.wake.acquire()


def _interrupted() -> BaseException:
    return RuntimeError("the group's leader was interrupted before this call's outcome was known")


class Batcher(Generic[T, R]):
    """Runs calls from many threads in batches, one batch at a time (leader/follower).

    Args:
        run: Runs one batch: takes the items in queue order and returns, for
            each, its result or the exception that call must raise. An
            exception raised by ``run`` itself goes to every call of the batch.
    """

    def __init__(self, run: Callable[[Sequence[T]], Sequence[R | BaseException]]) -> None:
        self._run = run
        self._mutex = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._busy = False
        #: Batches run so far (for tests and benchmarks: calls / batches = group size).
        self.batches = 0

    def submit(self, item: T) -> R:
        """Run ``item`` in the next batch and return its result (or raise its exception).

        Raises:
            BaseException: Whatever the batch gave this item, or raised as a whole.
        """
        slot: _Slot[T, R] = _Slot(item)
        with self._mutex:
            self._queue.append(slot)
            if self._busy:
                lead = False
            else:
                self._busy = lead = True
        if not lead:
            slot.wake.acquire()  # until a leader has our outcome, or makes us lead
            if not slot.lead:
                return self._outcome(slot)
        self._lead(slot)
        return self._outcome(slot)

    def _lead(self, own: _Slot[T, R]) -> None:
        with self._mutex:
            batch = self._queue.copy()
            self._queue.clear()  # the same list object all along: tests watch it fill
        outcomes: Sequence[R | BaseException] = ()
        try:
            try:
                outcomes = self._run([slot.item for slot in batch])
                if len(outcomes) != len(batch):  # pragma: no cover - a store's bug
                    raise AssertionError("a batch must give one outcome per item")
            except BaseException as exc:  # the whole batch failed: every call fails with it
                outcomes = [exc] * len(batch)
            self.batches += 1
        finally:
            # Whatever happened above, every caller of the batch is woken with an outcome
            # (no follower may wait for ever), and leadership passes on or ends.
            for index, slot in enumerate(batch):
                outcome = outcomes[index] if index < len(outcomes) else _interrupted()
                if isinstance(outcome, BaseException):
                    slot.error = outcome
                else:
                    slot.result = outcome
                if slot is not own:
                    slot.wake.release()
            with self._mutex:
                if self._queue:
                    # The oldest waiter leads next: it runs everything queued while we
                    # ran, then passes leadership on in turn.
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.wake.release()
                else:
                    self._busy = False

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R:
        if slot.error is not None:
            error, slot.error = slot.error, None
            raise error
        return slot.result  # type: ignore[return-value]  # set by the leader
