"""The example-based check groups, written once against :class:`Handle`.

Each group is a function of a :class:`Subject` that raises a
:class:`Violation` naming what broke, returns ``None`` when the store passed,
or returns a reason when the group does not apply to this store (no admin
methods, no ``creation_time``, no ``reopen``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from fixseq import MAX_SEQ_NUM

from ._handles import PROTOCOL_METHODS, Handle, State, Violation, describe, fail

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CLOCK_SLACK",
    "INVALID_VALUES",
    "LONG_RUN",
    "Subject",
    "check_admin",
    "check_basics",
    "check_creation_time",
    "check_exhaustion",
    "check_long_run",
    "check_protocol",
    "check_rejected",
    "check_reopen",
    "check_validation",
    "expect_counters",
]

LONG_RUN = 1000
"""Consecutive next_out() (and observed_in()) calls in the long-run group."""

CLOCK_SLACK = datetime.timedelta(seconds=1)
"""How far creation_time() may sit from the clock around a reset, or drift across
a reopen: a store may keep it to the second."""

_ADMIN_SKIP = "the store has no set_next_out/set_next_in/snapshot (not admin-capable)"

# (value, what kind of rejection the contract asks for)
INVALID_VALUES: tuple[tuple[object, str], ...] = (
    (0, "range"),
    (-1, "range"),
    (-(2**63), "range"),
    (MAX_SEQ_NUM + 1, "range"),
    (2**64, "range"),
    (10**40, "range"),
    (True, "bool"),
    (False, "bool"),
    (1.0, "type"),
    (2.5, "type"),
    (float("nan"), "type"),
    ("2", "type"),
    (b"2", "type"),
    (None, "type"),
    (Decimal(2), "type"),
    (Fraction(2), "type"),
    ([2], "type"),
    (2 + 0j, "type"),
)
"""Every bad seq num the kit feeds each setter, with the rejection it expects:
``range`` a ValueError, ``type`` a TypeError, ``bool`` either."""

_EXPECTED = {
    "range": ((ValueError,), "ValueError (an out-of-range number)"),
    "type": ((TypeError,), "TypeError (not an int)"),
    "bool": ((TypeError, ValueError), "TypeError or ValueError (a bool is not a seq num)"),
}


@dataclass(frozen=True)
class Subject:
    """Everything a check group needs to know about the store under test."""

    fresh: Callable[[str], Handle]
    """Return a handle on a fresh store (counters at 1 and 1), for the named group."""
    can_reopen: bool
    """True when the run was given a reopen callable."""
    workers: int
    """Threads (sync) or tasks (async) for the concurrency group."""
    max_examples: int
    """Hypothesis examples for the model group."""
    concurrency: Callable[[Subject], None]
    """Runs the concurrency group (threads or tasks)."""
    model: Callable[[Subject], None]
    """Runs the Hypothesis state machine."""


def _kind(got: int, expected: int) -> str:
    if got < expected:
        return "a number handed out again"
    return "a skipped number"


def expect_counters(
    h: Handle,
    next_out: int,
    next_in: int,
    after: str,
    *,
    created: datetime.datetime | None = None,
) -> State:
    """Read the store and require the expected counters (and snapshot, if it has one).

    Raises:
        Violation: A read disagrees, naming each read, its value and the expectation.
    """
    state = h.state()
    problems = []
    if state.next_out != next_out:
        problems.append(f"peek_out() is {describe(state.next_out)}, expected {describe(next_out)}")
    if state.next_in != next_in:
        problems.append(
            f"current_in() is {describe(state.next_in)}, expected {describe(next_in)}"
            + (
                " (the inbound high-water mark went down)"
                if state.next_in < next_in and next_in > 1
                else ""
            )
        )
    if state.snapshot is not None and state.snapshot != (next_out, next_in):
        if not problems:
            problems.append(
                f"snapshot() is {state.snapshot}, disagreeing with the single reads "
                f"(peek_out()={describe(next_out)}, current_in()={describe(next_in)})"
            )
        else:
            problems.append(f"snapshot() is {state.snapshot}")
    if created is not None and state.created is not None and state.created != created:
        problems.append(f"creation_time() changed from {created} to {state.created}")
    if problems:
        raise fail(h.label, h.name, f"after {after}: " + "; ".join(problems))
    return state


def check_rejected(h: Handle, method: str, value: object, kind: str) -> None:
    """Call ``method(value)``, require the contract's rejection, and that nothing changed.

    Raises:
        Violation: The call was accepted, raised the wrong exception, or changed
            a counter (or the creation time) before it raised.
    """
    accepted, label = _EXPECTED[kind]
    before = h.state()
    call = f"{method}({describe(value)})"
    try:
        h.call(method, value)
    except Violation:
        raise
    except accepted:
        pass
    except Exception as exc:
        raise fail(
            h.label,
            h.name,
            f"{call} raised {type(exc).__name__}({exc}); the contract asks for {label}",
        ) from exc
    else:
        raise fail(h.label, h.name, f"{call} was accepted; it must raise {label}")
    after = h.state()
    if after != before:
        raise fail(
            h.label,
            h.name,
            f"{call} was rejected but changed the store: before it {_show(before)}, "
            f"after it {_show(after)}",
        )


def _show(state: State) -> str:
    text = state.counters()
    if state.snapshot is not None:
        text += f", snapshot()={state.snapshot}"
    if state.created is not None:
        text += f", creation_time()={state.created.isoformat()}"
    return text


# -- the groups -------------------------------------------------------------------


def check_protocol(subject: Subject) -> str | None:
    """The five SeqStore methods exist and are callable (and return awaitables, if async)."""
    h = subject.fresh("protocol")
    missing = [name for name in PROTOCOL_METHODS if not callable(getattr(h.store, name, None))]
    if missing:
        raise fail(h.label, h.name, f"has no callable {', '.join(missing)}: not a SeqStore")
    h.peek_out()
    h.current_in()
    return None


def check_basics(subject: Subject) -> str | None:
    """A fresh store, peek_out against next_out, the inbound mark's rules, reset."""
    h = subject.fresh("basics")
    first, second = h.peek_out(), h.peek_out()
    if first != second:
        raise fail(
            h.label,
            h.name,
            f"peek_out() advanced: two calls in a row returned {first} then {second}",
        )
    got = h.next_out()
    if got != first:
        raise fail(
            h.label,
            h.name,
            f"peek_out() said {first} but the next next_out() returned {got}: "
            "peek_out() disagrees with next_out()",
        )
    mark = h.current_in()
    if got != 1 or mark != 1:
        raise fail(
            h.label,
            h.name,
            f"a store from make_store() handed out {got} first and had current_in() = {mark}: "
            "a fresh store's counters start at 1 and 1",
        )
    expect_counters(h, 2, 1, "make_store() and one next_out()")
    for expected in range(2, 7):
        first, second = h.peek_out(), h.peek_out()
        if first != expected or second != expected:
            raise fail(
                h.label,
                h.name,
                f"peek_out() advanced or disagrees: two calls returned {first} then {second} "
                f"where next_out() is due to return {expected}",
            )
        got = h.next_out()
        if got != first:
            raise fail(
                h.label,
                h.name,
                f"peek_out() said {first} but the next next_out() returned {got}",
            )
    for seq_num, mark in ((1, 2), (1, 2), (2, 3), (5, 6), (3, 6), (6, 7), (100, 101), (7, 101)):
        h.observed_in(seq_num)
        got = h.current_in()
        if got != mark:
            if got == mark - 1 or got == mark + 1:
                what = "off by one: the mark is the next inbound number expected, seq_num + 1"
            elif got < mark:
                what = "the inbound high-water mark went down (it is max(mark, seq_num + 1))"
            else:
                what = "the inbound mark ran ahead of what was observed"
            raise fail(
                h.label,
                h.name,
                f"after observed_in({seq_num}) current_in() is {got}, expected {mark}: {what}",
            )
    h.reset()
    expect_counters(h, 1, 1, "reset() (a reset puts both counters at 1)")
    got = h.next_out()
    if got != 1:
        raise fail(h.label, h.name, f"the first next_out() after reset() returned {got}, not 1")
    h.observed_in(1)
    expect_counters(h, 2, 2, "reset(), next_out() and observed_in(1)")
    return None


def check_long_run(subject: Subject) -> str | None:
    """At least 1,000 consecutive next_out() and observed_in(), every result checked."""
    h = subject.fresh("long_run")
    for expected in range(1, LONG_RUN + 1):
        got = h.next_out()
        if got != expected:
            raise fail(
                h.label,
                h.name,
                f"call {expected} of {LONG_RUN} consecutive next_out() returned {got}, "
                f"expected {expected}: {_kind(got, expected)}",
            )
        if expected % 97 == 0:
            peek = h.peek_out()
            if peek != expected + 1:
                raise fail(
                    h.label,
                    h.name,
                    f"after {expected} next_out() calls peek_out() is {peek}, "
                    f"expected {expected + 1}",
                )
    for seq_num in range(1, LONG_RUN + 1):
        expected = LONG_RUN + seq_num
        got = h.next_out()
        if got != expected:
            raise fail(
                h.label,
                h.name,
                f"next_out() returned {got} at call {expected} (interleaved with observed_in), "
                f"expected {expected}: {_kind(got, expected)}",
            )
        h.observed_in(seq_num)
        mark = h.current_in()
        if mark != seq_num + 1:
            raise fail(
                h.label,
                h.name,
                f"after observed_in({seq_num}) (message {seq_num} of {LONG_RUN} in order) "
                f"current_in() is {mark}, expected {seq_num + 1}",
            )
    expect_counters(h, 2 * LONG_RUN + 1, LONG_RUN + 1, "the long run")
    return None


def check_validation(subject: Subject) -> str | None:
    """Bad seq nums are rejected with the right error and change nothing; the bounds are open."""
    h = subject.fresh("validation")
    for _ in range(3):
        h.next_out()
    h.observed_in(7)
    expect_counters(h, 4, 8, "three next_out() and observed_in(7)")
    methods = ["observed_in"] + (["set_next_out", "set_next_in"] if h.admin else [])
    for method in methods:
        for value, kind in INVALID_VALUES:
            check_rejected(h, method, value, kind)
    # The bounds themselves are valid: 1 and MAX_SEQ_NUM.
    h.observed_in(1)
    expect_counters(h, 4, 8, "observed_in(1) (a valid number below the mark)")
    h.observed_in(MAX_SEQ_NUM)
    expect_counters(h, 4, MAX_SEQ_NUM + 1, "observed_in(MAX_SEQ_NUM) (the largest valid number)")
    if h.admin:
        h.set_next_in(1)
        h.set_next_out(MAX_SEQ_NUM)
        expect_counters(h, MAX_SEQ_NUM, 1, "set_next_in(1) and set_next_out(MAX_SEQ_NUM)")
        h.set_next_out(1)
        h.set_next_in(MAX_SEQ_NUM)
        expect_counters(h, 1, MAX_SEQ_NUM, "set_next_out(1) and set_next_in(MAX_SEQ_NUM)")
    return None


def check_admin(subject: Subject) -> str | None:
    """set_next_out/set_next_in take effect in both directions; snapshot agrees."""
    h = subject.fresh("admin")
    if not h.admin:
        return _ADMIN_SKIP
    expect_counters(h, 1, 1, "make_store()")
    TOP = MAX_SEQ_NUM - 1
    steps: list[tuple[str, Callable[[], object], int, int]] = [
        ("set_next_out(100)", lambda: h.set_next_out(100), 100, 1),
        ("set_next_in(50)", lambda: h.set_next_in(50), 100, 50),
        ("next_out()", h.next_out, 101, 50),
        ("set_next_out(3) (downwards)", lambda: h.set_next_out(3), 3, 50),
        ("observed_in(10) (below the mark)", lambda: h.observed_in(10), 3, 50),
        ("set_next_in(2) (downwards)", lambda: h.set_next_in(2), 3, 2),
        ("observed_in(2)", lambda: h.observed_in(2), 3, 3),
        ("set_next_out(1)", lambda: h.set_next_out(1), 1, 3),
        ("set_next_in(1)", lambda: h.set_next_in(1), 1, 1),
        ("set_next_out(MAX_SEQ_NUM - 1)", lambda: h.set_next_out(TOP), TOP, 1),
    ]
    for what, action, next_out, next_in in steps:
        result = action()
        if what == "next_out()" and result != 100:
            raise fail(
                h.label,
                h.name,
                f"next_out() after set_next_out(100) returned {result}: "
                "set_next_out(100) did not take effect",
            )
        expect_counters(h, next_out, next_in, what)
    return None


def check_creation_time(subject: Subject) -> str | None:
    """creation_time() is aware, moves to now on reset() and on nothing else."""
    h = subject.fresh("creation_time")
    if not h.has_creation_time:
        return "the store has no creation_time()"
    first = h.creation_time()
    again = h.creation_time()
    if again != first:
        raise fail(h.label, h.name, f"two creation_time() calls returned {first} then {again}")
    actions: list[tuple[str, Callable[[], object]]] = [
        ("next_out()", h.next_out),
        ("observed_in(5)", lambda: h.observed_in(5)),
        ("peek_out() and current_in()", lambda: (h.peek_out(), h.current_in())),
    ]
    if h.admin:
        actions += [
            ("set_next_out(9)", lambda: h.set_next_out(9)),
            ("set_next_in(9)", lambda: h.set_next_in(9)),
            ("snapshot()", h.snapshot),
        ]
    for what, action in actions:
        action()
        now = h.creation_time()
        if now != first:
            raise fail(
                h.label,
                h.name,
                f"{what} changed creation_time() from {first} to {now}; only reset() may",
            )
    before = datetime.datetime.now(datetime.timezone.utc)
    h.reset()
    after = datetime.datetime.now(datetime.timezone.utc)
    created = h.creation_time()
    if not before - CLOCK_SLACK <= created <= after + CLOCK_SLACK:
        raise fail(
            h.label,
            h.name,
            f"after reset() creation_time() is {created}; expected the time of the reset "
            f"(between {before} and {after})",
        )
    return None


def check_exhaustion(subject: Subject) -> str | None:
    """After set_next_out(MAX_SEQ_NUM): one more number, then refusals that change nothing."""
    h = subject.fresh("exhaustion")
    if not h.admin:
        return _ADMIN_SKIP
    h.observed_in(7)
    h.set_next_out(MAX_SEQ_NUM)
    expect_counters(h, MAX_SEQ_NUM, 8, "set_next_out(MAX_SEQ_NUM)")
    got = h.next_out()
    if got != MAX_SEQ_NUM:
        raise fail(
            h.label,
            h.name,
            f"next_out() after set_next_out(MAX_SEQ_NUM) returned {describe(got)}, "
            "expected MAX_SEQ_NUM",
        )
    expect_counters(h, MAX_SEQ_NUM + 1, 8, "next_out() returned MAX_SEQ_NUM")
    for attempt in ("first", "second"):
        refuse_exhausted(h, f"the {attempt} next_out() after MAX_SEQ_NUM")
        expect_counters(h, MAX_SEQ_NUM + 1, 8, f"the {attempt} refused next_out()")
    h.set_next_out(5)
    got = h.next_out()
    if got != 5:
        raise fail(
            h.label,
            h.name,
            f"after exhaustion, set_next_out(5) then next_out() returned {describe(got)}, not 5",
        )
    h.set_next_out(MAX_SEQ_NUM)
    h.next_out()
    h.reset()
    got = h.next_out()
    if got != 1:
        raise fail(
            h.label,
            h.name,
            f"after exhaustion, reset() then next_out() returned {describe(got)}, not 1",
        )
    return None


def refuse_exhausted(h: Handle, what: str) -> None:
    """Require that next_out() raises now that MAX_SEQ_NUM has been handed out.

    Raises:
        Violation: next_out() returned a number instead.
    """
    try:
        got = h.call("next_out")
    except Violation:
        raise
    except Exception:
        return
    raise fail(
        h.label,
        h.name,
        f"{what} returned {describe(got)}; once MAX_SEQ_NUM has been handed out, "
        "next_out() must raise (SeqNumExhaustedError) until reset() or set_next_out()",
    )


def check_reopen(subject: Subject) -> str | None:
    """Every kind of acknowledged change survives a reopen made right after it."""
    if not subject.can_reopen:
        return "no reopen was given (only durable stores have one)"
    h = subject.fresh("reopen")
    model = [1, 1]
    TOO_BIG = MAX_SEQ_NUM + 1

    def out() -> None:
        got = h.next_out()
        if got != model[0]:
            raise fail(h.label, h.name, f"next_out() returned {describe(got)}, expected {model[0]}")
        model[0] += 1

    def inbound(seq_num: int) -> Callable[[], None]:
        def action() -> None:
            h.observed_in(seq_num)
            model[1] = max(model[1], seq_num + 1)

        return action

    def set_out(seq_num: int) -> Callable[[], None]:
        def action() -> None:
            h.set_next_out(seq_num)
            model[0] = seq_num

        return action

    def set_in(seq_num: int) -> Callable[[], None]:
        def action() -> None:
            h.set_next_in(seq_num)
            model[1] = seq_num

        return action

    def reset() -> None:
        h.reset()
        model[0] = model[1] = 1

    def reject(method: str, value: object, kind: str) -> Callable[[], None]:
        return lambda: check_rejected(h, method, value, kind)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("nothing (a fresh store)", lambda: None),
        ("next_out() returned 1", out),
        ("next_out() returned 2", out),
        ("observed_in(10)", inbound(10)),
        ("observed_in(4) (below the mark)", inbound(4)),
        ("observed_in(11)", inbound(11)),
        ("next_out() returned 3", out),
        ("a rejected observed_in(0)", reject("observed_in", 0, "range")),
        ("a rejected observed_in(MAX_SEQ_NUM + 1)", reject("observed_in", TOO_BIG, "range")),
        ("a rejected observed_in(1.5)", reject("observed_in", 1.5, "type")),
    ]
    if h.admin:
        steps += [
            ("set_next_out(1000)", set_out(1000)),
            ("set_next_out(7) (downwards)", set_out(7)),
            ("set_next_in(500)", set_in(500)),
            ("set_next_in(3) (downwards)", set_in(3)),
            ("a rejected set_next_out(-1)", reject("set_next_out", -1, "range")),
            ("a rejected set_next_in(0)", reject("set_next_in", 0, "range")),
            ("set_next_out(MAX_SEQ_NUM)", set_out(MAX_SEQ_NUM)),
            ("next_out() returned MAX_SEQ_NUM", out),
        ]
    steps += [
        ("reset()", reset),
        ("next_out() returned 1 after reset()", out),
        ("observed_in(1) after reset()", inbound(1)),
        ("reset() again", reset),
    ]
    previous = h.state()
    for what, action in steps:
        before = datetime.datetime.now(datetime.timezone.utc)
        action()
        after = datetime.datetime.now(datetime.timezone.utc)
        h = h.reopen()
        state = h.state()
        problems = []
        if state.next_out != model[0]:
            problems.append(
                f"peek_out() is {describe(state.next_out)}, but {describe(model[0])} "
                "was acknowledged"
            )
        if state.next_in != model[1]:
            problems.append(
                f"current_in() is {describe(state.next_in)}, but {describe(model[1])} "
                "was acknowledged"
            )
        if state.snapshot is not None and state.snapshot != (state.next_out, state.next_in):
            problems.append(f"snapshot() is {state.snapshot}, disagreeing with the single reads")
        if state.created is not None and previous.created is not None:
            if action is reset:
                if not before - CLOCK_SLACK <= state.created <= after + CLOCK_SLACK:
                    problems.append(
                        f"creation_time() is {state.created}, not the time of the reset "
                        f"(between {before} and {after})"
                    )
            elif abs(state.created - previous.created) > CLOCK_SLACK:
                problems.append(f"creation_time() moved from {previous.created} to {state.created}")
        if problems:
            raise fail(
                h.label,
                h.name,
                f"after {what} and an immediate reopen: "
                + "; ".join(problems)
                + " (a clean close and reopen must give back exactly the acknowledged state)",
            )
        if model[0] > MAX_SEQ_NUM:
            refuse_exhausted(h, "next_out() after MAX_SEQ_NUM was handed out and a reopen")
            expect_counters(h, model[0], model[1], "a refused next_out() after a reopen")
        previous = state
    return None
