"""The Hypothesis state machines: a store held against a two-counter model.

Each rule makes one call (or one short run of calls) and checks what it returned
against the model. No ``@invariant`` reads the store between rules, so the
machine can place a reopen right after any change with no other call between.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from fixseq import MAX_SEQ_NUM

from ._checks import (
    CLOCK_SLACK,
    INVALID_VALUES,
    check_rejected,
    expect_counters,
    refuse_exhausted,
)
from ._handles import AsyncHandle, Handle, SyncHandle, describe, fail, maybe_await

if TYPE_CHECKING:
    from fixseq import AsyncSeqStore, SeqStore

__all__ = ["AsyncSeqStoreMachine", "SeqStoreMachine", "StoreMachineBase", "kit_settings"]

_UTC = datetime.timezone.utc

# A seq num for a rule: relative to the model's counter (so the interesting
# region around the mark is hit often) or absolute (the bounds, or anywhere).
_TARGETS = st.one_of(
    st.tuples(st.just("rel"), st.integers(-3, 6)),
    st.tuples(st.just("abs"), st.sampled_from([1, 2, MAX_SEQ_NUM - 1, MAX_SEQ_NUM])),
    st.tuples(st.just("abs"), st.integers(1, MAX_SEQ_NUM)),
)
_INVALID = st.sampled_from(INVALID_VALUES) | st.tuples(
    st.integers(max_value=0) | st.integers(min_value=MAX_SEQ_NUM + 1), st.just("range")
)


def kit_settings(max_examples: int) -> settings:
    """The settings the kit runs its state machine with.

    They inherit the active Hypothesis profile (so a CI profile's
    ``derandomize=True`` applies) and override what a store check needs: the
    number of examples, no deadline (a durable store's sync stalls at random on
    a shared machine), one bug reported (always an ``AssertionError``), and no
    example database (a kit run is not a test function with a stable key), and
    no "explain" phase (it would point at the kit's lines, not the store's).
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        report_multiple_bugs=False,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
        phases=[phase for phase in Phase if phase is not Phase.explain],
    )


def _resolve(target: tuple[str, int], counter: int) -> int:
    kind, value = target
    if kind == "rel":
        value = counter + value
    return min(max(value, 1), MAX_SEQ_NUM)


class StoreMachineBase(RuleBasedStateMachine):
    """The rules shared by :class:`SeqStoreMachine` and :class:`AsyncSeqStoreMachine`.

    A subclass provides :meth:`open_handle`. The model is two integers; every
    rule calls the store and compares.
    """

    def __init__(self) -> None:
        super().__init__()
        self.handle = self.open_handle()
        self.next_out = 1
        self.next_in = 1
        # creation_time(): known exactly, or (after a reset) known to lie in a window.
        self.created: datetime.datetime | None = None
        self.created_window: tuple[datetime.datetime, datetime.datetime] | None = None
        self.created_slack = datetime.timedelta(0)

    def open_handle(self) -> Handle:
        """Return a handle on a fresh store (counters at 1 and 1)."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------

    def _fail(self, message: str) -> AssertionError:
        return fail(self.handle.label, self.handle.name, message)

    def _check_counters(self, after: str) -> None:
        expect_counters(self.handle, self.next_out, self.next_in, after)

    def _advance(self) -> None:
        got = self.handle.next_out()
        if got != self.next_out:
            what = "a number handed out again" if got < self.next_out else "a skipped number"
            raise self._fail(
                f"next_out() returned {describe(got)}, the model expects "
                f"{describe(self.next_out)}: {what}"
            )
        self.next_out += 1

    # -- the five protocol methods ------------------------------------------------

    @rule()
    def next_out_once(self) -> None:
        """One next_out(), or a refusal once MAX_SEQ_NUM was handed out."""
        if self.next_out > MAX_SEQ_NUM:
            refuse_exhausted(self.handle, "next_out() after MAX_SEQ_NUM was handed out")
            self._check_counters("a refused next_out()")
        else:
            self._advance()

    @rule(count=st.integers(2, 40))
    def next_out_run(self, count: int) -> None:
        """A run of consecutive next_out() calls."""
        for _ in range(min(count, MAX_SEQ_NUM + 1 - self.next_out)):
            self._advance()

    @rule()
    def peek_out(self) -> None:
        """peek_out() equals the model and does not advance it."""
        got = self.handle.peek_out()
        if got != self.next_out:
            raise self._fail(
                f"peek_out() is {describe(got)}, the model expects {describe(self.next_out)}"
            )

    @rule(number=_TARGETS)
    def observed_in(self, number: tuple[str, int]) -> None:
        """observed_in(n) near the mark, at a bound, or anywhere."""
        seq_num = _resolve(number, self.next_in)
        self.handle.observed_in(seq_num)
        self.next_in = max(self.next_in, seq_num + 1)

    @rule()
    def current_in(self) -> None:
        """current_in() equals the model's mark."""
        got = self.handle.current_in()
        if got != self.next_in:
            what = (
                "off by one"
                if abs(got - self.next_in) == 1
                else ("the mark went down or an update was lost")
                if got < self.next_in
                else "the mark ran ahead of what was observed"
            )
            raise self._fail(
                f"current_in() is {describe(got)}, the model expects "
                f"{describe(self.next_in)}: {what}"
            )

    @rule()
    def reset(self) -> None:
        """reset() puts both counters at 1 (and the creation time at now)."""
        before = datetime.datetime.now(_UTC)
        self.handle.reset()
        self.created_window = (before, datetime.datetime.now(_UTC))
        self.created = None
        self.next_out = self.next_in = 1

    # -- admin methods ---------------------------------------------------------

    @precondition(lambda self: self.handle.admin)
    @rule(number=_TARGETS)
    def set_next_out(self, number: tuple[str, int]) -> None:
        """set_next_out(n) takes effect, either way."""
        seq_num = _resolve(number, min(self.next_out, MAX_SEQ_NUM))
        self.handle.set_next_out(seq_num)
        self.next_out = seq_num

    @precondition(lambda self: self.handle.admin)
    @rule(number=_TARGETS)
    def set_next_in(self, number: tuple[str, int]) -> None:
        """set_next_in(n) takes effect, either way."""
        seq_num = _resolve(number, min(self.next_in, MAX_SEQ_NUM))
        self.handle.set_next_in(seq_num)
        self.next_in = seq_num

    @precondition(lambda self: self.handle.admin)
    @rule()
    def snapshot(self) -> None:
        """snapshot() equals the model (and so the single reads)."""
        got = self.handle.snapshot()
        if got != (self.next_out, self.next_in):
            raise self._fail(
                f"snapshot() is {got}, the model expects {(self.next_out, self.next_in)}"
            )

    @precondition(lambda self: self.handle.has_creation_time)
    @rule()
    def creation_time(self) -> None:
        """creation_time() moves only on reset (to about then); it survives a reopen."""
        got = self.handle.creation_time()
        if self.created_window is not None:
            low, high = self.created_window
            if not low - CLOCK_SLACK <= got <= high + CLOCK_SLACK:
                raise self._fail(
                    f"creation_time() is {got}, not the time of the last reset() "
                    f"(between {low} and {high})"
                )
            self.created_window = None
        elif self.created is not None and abs(got - self.created) > self.created_slack:
            raise self._fail(
                f"creation_time() changed from {self.created} to {got} without a reset()"
            )
        self.created, self.created_slack = got, datetime.timedelta(0)

    # -- bad input and reopen -------------------------------------------------------

    @rule(bad=_INVALID)
    def rejected_observed_in(self, bad: tuple[object, str]) -> None:
        """A bad observed_in() raises the right error and changes nothing."""
        check_rejected(self.handle, "observed_in", bad[0], bad[1])

    @precondition(lambda self: self.handle.admin)
    @rule(method=st.sampled_from(["set_next_out", "set_next_in"]), bad=_INVALID)
    def rejected_setter(self, method: str, bad: tuple[object, str]) -> None:
        """A bad set_next_out()/set_next_in() raises the right error and changes nothing."""
        check_rejected(self.handle, method, bad[0], bad[1])

    @precondition(lambda self: self.handle.can_reopen)
    @rule()
    def reopen(self) -> None:
        """Close and reopen: every acknowledged change is still there."""
        self.handle = self.handle.reopen()
        note(f"reopened: expecting next_out={self.next_out}, next_in={self.next_in}")
        self._check_counters("a reopen (the acknowledged state must survive it)")
        # A store may keep the creation time to the second: allow that once.
        self.created_slack = CLOCK_SLACK


class SeqStoreMachine(StoreMachineBase):
    """A Hypothesis state machine that holds a :class:`~fixseq.SeqStore` to the contract.

    Subclass it, define :meth:`make_store` (and :meth:`reopen_store` for a
    durable store), and run it as a test::

        class JsonStoreMachine(SeqStoreMachine):
            def make_store(self) -> JsonSeqStore:
                return JsonSeqStore(new_path())

        TestJsonStore = JsonStoreMachine.TestCase

    Admin rules (``set_next_out``, ``set_next_in``, ``snapshot``) run only on a
    store that has those methods, ``creation_time`` only where present, and
    ``reopen`` only when :meth:`reopen_store` is overridden.
    """

    def make_store(self) -> SeqStore:
        """Return a fresh store whose counters start at 1 and 1."""
        raise NotImplementedError(f"{type(self).__name__} must define make_store()")

    def reopen_store(self, store: Any) -> SeqStore:
        """Close ``store`` and open a new one on the same backing location (optional)."""
        raise NotImplementedError

    def open_handle(self) -> Handle:
        """Return a handle on :meth:`make_store`'s store."""
        has_reopen = type(self).reopen_store is not SeqStoreMachine.reopen_store
        return SyncHandle(
            self.make_store(), "model", reopen=self.reopen_store if has_reopen else None
        )


class AsyncSeqStoreMachine(StoreMachineBase):
    """A Hypothesis state machine that holds an :class:`~fixseq.AsyncSeqStore` to the contract.

    As :class:`SeqStoreMachine`, with ``make_store`` and ``reopen_store``
    coroutines (a plain ``make_store`` works too). Each example runs its store on
    a fresh event loop of the anyio backend named by :attr:`backend`
    (``"asyncio"`` or ``"trio"``), in a portal thread: Hypothesis drives the
    rules from the test's thread.
    """

    backend: ClassVar[str] = "asyncio"
    """The anyio backend the store runs on: ``"asyncio"`` or ``"trio"``."""

    def make_store(self) -> Any:
        """Return a fresh store whose counters start at 1 and 1 (may be a coroutine)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_store()")

    async def reopen_store(self, store: Any) -> AsyncSeqStore:
        """Close ``store`` and open a new one on the same backing location (optional)."""
        raise NotImplementedError

    def open_handle(self) -> Handle:
        """Return a handle on :meth:`make_store`'s store, on this example's event loop."""
        from anyio.from_thread import start_blocking_portal

        self._exit_stack = contextlib.ExitStack()
        portal = self._exit_stack.enter_context(start_blocking_portal(self.backend))
        has_reopen = type(self).reopen_store is not AsyncSeqStoreMachine.reopen_store
        try:
            store = portal.call(self._make_on_loop)
        except BaseException:
            self._exit_stack.close()
            raise
        return AsyncHandle(
            store, "model", reopen=self.reopen_store if has_reopen else None, portal=portal
        )

    async def _make_on_loop(self) -> Any:
        return await maybe_await(self.make_store())

    def teardown(self) -> None:
        """Stop this example's event loop (when it started one)."""
        self._exit_stack.close()
