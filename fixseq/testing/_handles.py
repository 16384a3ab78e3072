"""One blocking view over the store under test, sync or async.

Every check group except concurrency is written once, against :class:`Handle`:
a sync store is called directly, an async store through an anyio blocking
portal whose event loop (asyncio or trio) runs every call of one check run, so
a store bound to its loop (a connection pool, say) stays on that loop.
"""

from __future__ import annotations

import datetime
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fixseq import MAX_SEQ_NUM

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.from_thread import BlockingPortal

__all__ = [
    "ADMIN_METHODS",
    "PROTOCOL_METHODS",
    "AsyncHandle",
    "Handle",
    "State",
    "SyncHandle",
    "Violation",
    "describe",
    "fail",
    "maybe_await",
]

T = TypeVar("T")

PROTOCOL_METHODS = ("next_out", "peek_out", "observed_in", "current_in", "reset")
ADMIN_METHODS = ("set_next_out", "set_next_in", "snapshot")


class Violation(AssertionError):
    """A store broke the contract; the message names the check group and what broke."""


def fail(group: str, store: str, message: str) -> Violation:
    """Return the error a check raises: ``[group] Store: what broke``."""
    return Violation(f"[{group}] {store}: {message}")


def describe(value: object) -> str:
    """Return a short repr of a value for a message (huge ints by name)."""
    if type(value) is int:
        if value == MAX_SEQ_NUM:
            return "MAX_SEQ_NUM"
        if value == MAX_SEQ_NUM + 1:
            return "MAX_SEQ_NUM + 1"
        if value > MAX_SEQ_NUM:
            return f"MAX_SEQ_NUM + {value - MAX_SEQ_NUM}"
    return repr(value)


@dataclass(frozen=True)
class State:
    """What the single reads (and snapshot/creation_time where present) returned."""

    next_out: int
    next_in: int
    snapshot: tuple[int, int] | None
    created: datetime.datetime | None

    def counters(self) -> str:
        """The two counters as text for a message."""
        return f"peek_out()={describe(self.next_out)}, current_in()={describe(self.next_in)}"


class Handle:
    """A store under test, called through one blocking interface.

    Every read is checked for its type here, so each check can trust it has an
    ``int`` (or an aware ``datetime``) in hand.
    """

    def __init__(self, store: Any, label: str, *, reopen: Callable[[Any], Any] | None) -> None:
        self.store = store
        self.name = type(store).__name__
        self.label = label
        self.admin = all(callable(getattr(store, name, None)) for name in ADMIN_METHODS)
        self.has_creation_time = callable(getattr(store, "creation_time", None))
        self._reopen = reopen

    # -- calling ----------------------------------------------------------------

    def call(self, method: str, *args: object) -> Any:
        """Call ``method(*args)`` on the store and return its result."""
        raise NotImplementedError

    def reopen(self) -> Handle:
        """Hand the store to ``reopen`` and return a handle on the store it returns.

        Raises:
            Violation: ``reopen`` raised (a store that cannot open what it wrote).
        """
        try:
            return self._reopen_handle()
        except Violation:
            raise
        except Exception as exc:
            raise fail(self.label, self.name, f"reopen raised {type(exc).__name__}: {exc}") from exc

    def _reopen_handle(self) -> Handle:
        raise NotImplementedError

    @property
    def can_reopen(self) -> bool:
        """True when the check run was given a reopen callable."""
        return self._reopen is not None

    def checked(self, method: str, *args: object) -> Any:
        """Call ``method(*args)``; an exception from the store becomes a Violation.

        Raises:
            Violation: The store raised where the contract allows no error.
        """
        try:
            return self.call(method, *args)
        except Violation:
            raise
        except Exception as exc:
            shown = ", ".join(describe(arg) for arg in args)
            raise fail(
                self.label, self.name, f"{method}({shown}) raised {type(exc).__name__}: {exc}"
            ) from exc

    # -- typed calls ---------------------------------------------------------------

    def _int(self, value: object, call: str) -> int:
        if type(value) is not int:
            raise fail(
                self.label,
                self.name,
                f"{call} returned {value!r} ({type(value).__name__}), not an int",
            )
        return value

    def next_out(self) -> int:
        """``store.next_out()``, checked to be an int."""
        return self._int(self.checked("next_out"), "next_out()")

    def peek_out(self) -> int:
        """``store.peek_out()``, checked to be an int."""
        return self._int(self.checked("peek_out"), "peek_out()")

    def current_in(self) -> int:
        """``store.current_in()``, checked to be an int."""
        return self._int(self.checked("current_in"), "current_in()")

    def observed_in(self, seq_num: object) -> None:
        """``store.observed_in(seq_num)``."""
        self.checked("observed_in", seq_num)

    def reset(self) -> None:
        """``store.reset()``."""
        self.checked("reset")

    def set_next_out(self, seq_num: object) -> None:
        """``store.set_next_out(seq_num)``."""
        self.checked("set_next_out", seq_num)

    def set_next_in(self, seq_num: object) -> None:
        """``store.set_next_in(seq_num)``."""
        self.checked("set_next_in", seq_num)

    def snapshot(self) -> tuple[int, int]:
        """``store.snapshot()`` as a pair, checked to be two ints (names too, if it has them)."""
        value = self.checked("snapshot")
        try:
            pair = tuple(value)
        except TypeError:
            pair = ()
        if len(pair) != 2 or not all(type(item) is int for item in pair):
            raise fail(
                self.label,
                self.name,
                f"snapshot() returned {value!r}, not a pair of ints (next_out, next_in)",
            )
        named = (getattr(value, "next_out", pair[0]), getattr(value, "next_in", pair[1]))
        if named != pair:
            raise fail(
                self.label,
                self.name,
                f"snapshot() returned {value!r}: its fields next_out/next_in are {named}, "
                f"its items are {pair}",
            )
        return pair[0], pair[1]

    def creation_time(self) -> datetime.datetime:
        """``store.creation_time()``, checked to be an aware datetime."""
        value = self.checked("creation_time")
        if not isinstance(value, datetime.datetime):
            raise fail(
                self.label,
                self.name,
                f"creation_time() returned {value!r} ({type(value).__name__}), not a datetime",
            )
        if value.tzinfo is None or value.utcoffset() is None:
            raise fail(
                self.label,
                self.name,
                f"creation_time() returned a naive datetime {value!r}; it must be aware (UTC)",
            )
        return value

    def state(self) -> State:
        """Read everything the store offers, each read on its own (peek_out twice).

        Raises:
            Violation: A read returned the wrong type, or peek_out() advanced.
        """
        state = State(
            next_out=self.peek_out(),
            next_in=self.current_in(),
            snapshot=self.snapshot() if self.admin else None,
            created=self.creation_time() if self.has_creation_time else None,
        )
        again = self.peek_out()
        if again != state.next_out:
            raise fail(
                self.label,
                self.name,
                f"peek_out() advanced: it returned {describe(state.next_out)}, then "
                f"{describe(again)} with no next_out() in between",
            )
        return state


class SyncHandle(Handle):
    """A blocking store, called directly."""

    def call(self, method: str, *args: object) -> Any:
        """Call ``method(*args)`` on the store and return its result."""
        return getattr(self.store, method)(*args)

    def _reopen_handle(self) -> Handle:
        assert self._reopen is not None
        return SyncHandle(self._reopen(self.store), self.label, reopen=self._reopen)


async def maybe_await(value: T | Awaitable[T]) -> T:
    """Return ``value``, awaited first if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


class AsyncHandle(Handle):
    """An async store, every call awaited on the portal's event loop."""

    def __init__(
        self,
        store: Any,
        label: str,
        *,
        reopen: Callable[[Any], Any] | None,
        portal: BlockingPortal,
    ) -> None:
        super().__init__(store, label, reopen=reopen)
        self.portal = portal

    def call(self, method: str, *args: object) -> Any:
        """Await ``method(*args)`` on the event loop and return its result."""
        return self.portal.call(self._call, method, args)

    async def _call(self, method: str, args: tuple[object, ...]) -> Any:
        result = getattr(self.store, method)(*args)
        if not inspect.isawaitable(result):
            raise fail(
                "protocol",
                self.name,
                f"{method}() returned {result!r}, not an awaitable: an AsyncSeqStore's "
                "methods are coroutines",
            )
        return await result

    def _reopen_handle(self) -> Handle:
        store = self.portal.call(self._reopen_on_loop)
        return AsyncHandle(store, self.label, reopen=self._reopen, portal=self.portal)

    async def _reopen_on_loop(self) -> Any:
        assert self._reopen is not None
        return await maybe_await(self._reopen(self.store))
