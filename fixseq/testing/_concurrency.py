"""The concurrency group: threads (sync stores) or tasks (async stores) at once.

Detection does not wait for a lucky interleaving to show up in the final
totals. Every read is checked against what had already been acknowledged when
the read began (linearizability): once ``next_out()`` has returned ``n`` to
anyone, ``peek_out()`` must be above ``n``; once ``observed_in(n)`` has
returned, ``current_in()`` must be at least ``n + 1``; and neither may ever go
down. Each worker checks its own reads after every call, a watcher reads both
counters in a loop, and the inbound numbers are dealt to the workers in a
shuffled order, so a lost update (a lower mark written over a higher one) is
what a racy store produces almost every time, not once in a while. All workers
start together from a barrier (threads) or an event (tasks), and tasks
drift out of step by yielding to the loop a random number of times per call.

Under the GIL, a read-modify-write in pure Python is rarely interrupted, so a
store that forgot its lock would pass a plain threaded test almost every time
(and then fail on a free-threaded interpreter, or when its I/O releases the
GIL). The sync rounds therefore shorten the switch interval and trace each
worker thread: at random lines of the store's own code (not the standard
library's, not the kit's) the thread gives up the GIL, so other threads run
inside the store's critical sections. A store with a missing lock is caught
in every run, not once in a while.
"""

from __future__ import annotations

import os
import random
import sys
import sysconfig
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ._handles import AsyncHandle, Handle, describe, fail

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import FrameType

    from ._checks import Subject

__all__ = ["check_concurrency", "check_tasks", "check_threads"]

_TIMEOUT = 120.0  # seconds for one round: only a deadlocked store gets near it
_CALLS_PER_ROUND = 1200  # calls split between the workers of one round
_SWITCH_INTERVAL = 1e-5  # seconds; CPython's default is 5e-3
_YIELD_CHANCE = 0.1  # per traced line of store code: give up the GIL there
_RAISE_EVERY = 4  # one observed_in() in this many raises the mark

# Code the preempter never stops in: the kit itself and the standard library.
_NOT_STORE_CODE = tuple(
    {
        os.path.dirname(os.path.abspath(__file__)),
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
        "<",
    }
)


class _Preempter:
    """A per-thread trace function that yields the GIL at random lines of store code."""

    def __init__(self, seed: int) -> None:
        self._chance = random.Random(seed).random
        self._is_store_code: dict[str, bool] = {}

    def install(self) -> Callable[[], None]:
        """Trace the calling thread from now on; return what undoes it."""
        previous = sys.gettrace()
        sys.settrace(self._call)
        return lambda: sys.settrace(previous)

    def _call(self, frame: FrameType, event: str, arg: object) -> Any:
        filename = frame.f_code.co_filename
        store_code = self._is_store_code.get(filename)
        if store_code is None:
            store_code = not filename.startswith(_NOT_STORE_CODE)
            self._is_store_code[filename] = store_code
        return self._line if store_code else None

    def _line(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and self._chance() < _YIELD_CHANCE:
            time.sleep(0)  # releases the GIL: another thread may run here
        return self._line


_RACE_OUT = "a race in next_out(): the same number can go to two callers"
_RACE_IN = "a lost update: the inbound high-water mark went down under concurrency"


class _Log:
    """What one round has acknowledged so far, and the first problems seen."""

    def __init__(self, label: str, store: str, noun: str) -> None:
        self.lock = threading.Lock()
        self.label, self.store, self.noun = label, store, noun
        self.out_max = 0  # the highest number next_out() has returned to anyone
        self.in_started = 0  # the highest n an observed_in(n) has been called with
        self.in_acked = 0  # the highest n an observed_in(n) has returned for
        self.handed: dict[int, list[int]] = defaultdict(list)  # number -> workers
        self.problems: list[str] = []

    @property
    def stop(self) -> bool:
        return bool(self.problems)

    def problem(self, message: str, verdict: str = "") -> None:
        """Record a problem; ``verdict`` names the race it proves, first in the message."""
        with self.lock:
            self.problems.append(f"{verdict} ({message})" if verdict else message)

    def got_out(self, worker: int, last: int, number: object) -> int:
        if type(number) is not int:
            self.problem(f"next_out() returned {number!r}, not an int")
            return last
        if number <= last:
            self.problem(
                f"{self.noun} {worker} got {describe(number)} from next_out() after "
                f"{describe(last)}: next_out() went backwards",
                _RACE_OUT,
            )
        with self.lock:
            self.handed[number].append(worker)
            self.out_max = max(self.out_max, number)
        return number

    def started_in(self, seq_num: int) -> None:
        with self.lock:
            self.in_started = max(self.in_started, seq_num)

    def acked_in(self, seq_num: int) -> int:
        with self.lock:
            self.in_acked = max(self.in_acked, seq_num)
            return self.in_acked

    def floors(self) -> tuple[int, int]:
        with self.lock:
            return self.out_max, self.in_acked

    def ceiling_in(self) -> int:
        with self.lock:
            return self.in_started

    def check_in(self, who: str, mark: object, floor: int, previous: int) -> int:
        """Check one current_in() read; return it (or ``previous`` if unusable)."""
        if type(mark) is not int:
            self.problem(f"current_in() returned {mark!r}, not an int")
            return previous
        if mark < previous:
            self.problem(
                f"{who} saw current_in() go down from {describe(previous)} to "
                f"{describe(mark)} while {self.noun}s called observed_in()",
                _RACE_IN,
            )
        elif mark < floor + 1:
            self.problem(
                f"{who} read current_in() = {describe(mark)} although observed_in("
                f"{describe(floor)}) had already returned",
                _RACE_IN,
            )
        elif mark > self.ceiling_in() + 1:
            self.problem(
                f"{who} read current_in() = {describe(mark)}, ahead of every "
                f"observed_in() made so far (the highest was {describe(self.ceiling_in())})",
                "the inbound mark ran ahead of what was observed",
            )
        return mark

    def check_out(self, who: str, peek: object, floor: int, previous: int) -> int:
        """Check one peek_out() read; return it (or ``previous`` if unusable)."""
        if type(peek) is not int:
            self.problem(f"peek_out() returned {peek!r}, not an int")
            return previous
        if peek < previous:
            self.problem(
                f"{who} saw peek_out() go down from {describe(previous)} to {describe(peek)} "
                f"while {self.noun}s called next_out()",
                _RACE_OUT,
            )
        elif peek <= floor:
            self.problem(
                f"{who} read peek_out() = {describe(peek)} although next_out() had already "
                f"returned {describe(floor)}: that number would be handed out again",
                _RACE_OUT,
            )
        return peek

    def finish(self, out_total: int, in_total: int, peek: int, mark: int) -> None:
        """The end of a round: every number handed out once, nothing lost."""
        if self.problems:
            return
        dups = sorted((n, who) for n, who in self.handed.items() if len(who) > 1)
        if dups:
            number, who = dups[0]
            names = " and ".join(f"{self.noun} {w}" for w in who[:2])
            if len(who) > 2:
                names += f" (and {len(who) - 2} more {self.noun}s)"
            self.problem(
                f"next_out() handed {describe(number)} to {names} at once "
                f"({len(dups)} number(s) handed out twice)",
                _RACE_OUT,
            )
            return
        missing = [n for n in range(1, out_total + 1) if n not in self.handed]
        if missing:
            self.problem(
                f"{out_total} next_out() calls skipped {describe(missing[0])} "
                f"({len(missing)} number(s) never handed out)",
                "next_out() skipped numbers under concurrency",
            )
        elif peek != out_total + 1:
            self.problem(
                f"after {out_total} next_out() calls from many {self.noun}s, peek_out() is "
                f"{describe(peek)}, expected {out_total + 1}"
            )
        elif mark != in_total + 1:
            self.problem(
                f"after every observed_in() returned (the highest was {in_total}), "
                f"current_in() is {describe(mark)}, expected {in_total + 1}",
                _RACE_IN,
            )

    def raise_first(self, what: str) -> None:
        if self.problems:
            extra = len(self.problems) - 1
            more = f" (and {extra} more problem(s))" if extra else ""
            raise fail(self.label, self.store, f"{what}: {self.problems[0]}{more}")


def _rounds(workers: int) -> list[tuple[str, int, int]]:
    half = max(1, workers // 2)
    return [
        (f"next_out() from {workers} {{noun}}s at once", workers, 0),
        (f"observed_in() from {workers} {{noun}}s at once", 0, workers),
        (f"next_out() and observed_in() from {2 * half} {{noun}}s at once", half, half),
    ]


def _deal(in_workers: int, ops: int, seed: int) -> list[list[int]]:
    """The observed_in() numbers of each worker: one raise of the mark in four calls.

    The raises are unique and climb steadily across workers; the other calls
    repeat numbers at or below that worker's last raise, so they should change
    nothing. A racy store turns such a call into a stale write that puts the
    mark back down, and the mark then stays down until the next raise: long
    enough for a read to see it. (With every call a raise, the next raise
    would hide a lost update almost at once.)
    """
    chance = random.Random(seed)
    shares: list[list[int]] = []
    for worker in range(in_workers):
        numbers: list[int] = []
        last = 1
        for op in range(ops):
            if op % _RAISE_EVERY == 0:
                last = (op // _RAISE_EVERY) * in_workers + worker + 1
                numbers.append(last)
            else:
                numbers.append(chance.randint(1, last))
        shares.append(numbers)
    return shares


def _highest(in_workers: int, ops: int) -> int:
    """The highest number :func:`_deal` hands out (0 without inbound workers)."""
    if not in_workers:
        return 0
    return ((ops - 1) // _RAISE_EVERY + 1) * in_workers


def _ops(workers: int) -> int:
    return max(25, -(-_CALLS_PER_ROUND // workers))


def check_concurrency(subject: Subject) -> str | None:
    """Run the concurrency group of the subject (threads or tasks)."""
    subject.concurrency(subject)
    return None


# -- threads -----------------------------------------------------------------------


def check_threads(subject: Subject) -> None:
    """Three rounds of barrier-started threads on a sync store, each on a fresh store."""
    ops = _ops(subject.workers)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL)
    try:
        for seed, (what, n_out, n_in) in enumerate(_rounds(subject.workers)):
            h = subject.fresh("concurrency")
            what = what.format(noun="thread")
            log = _Log(h.label, h.name, "thread")
            _thread_round(h, log, n_out, n_in, ops, seed)
            log.raise_first(what)
    finally:
        sys.setswitchinterval(old_interval)


def _thread_round(h: Handle, log: _Log, n_out: int, n_in: int, ops: int, seed: int) -> None:
    store: Any = h.store
    shares = _deal(n_in, ops, seed) if n_in else []
    barrier = threading.Barrier(n_out + n_in + 1, timeout=_TIMEOUT)
    done = threading.Event()

    def guarded(name: str, body: Callable[[], None], index: int) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                log.problem(f"{name} never started: the barrier broke")
                return
            untrace = _Preempter(seed * 1000 + index).install()
            try:
                body()
            except Exception as exc:
                log.problem(f"{name} raised {type(exc).__name__}: {exc}")
            finally:
                untrace()

        return run

    def out_worker(k: int) -> Callable[[], None]:
        def body() -> None:
            last = 0
            for _ in range(ops):
                if log.stop:
                    return
                last = log.got_out(k, last, store.next_out())

        return body

    def in_worker(k: int) -> Callable[[], None]:
        def body() -> None:
            previous = 0
            for seq_num in shares[k]:
                if log.stop:
                    return
                log.started_in(seq_num)
                store.observed_in(seq_num)
                floor = log.acked_in(seq_num)
                previous = log.check_in(f"thread {k}", store.current_in(), floor, previous)

        return body

    def watcher() -> None:
        last_out = last_in = 0
        while not log.stop:
            finished = done.is_set()
            out_floor, in_floor = log.floors()
            last_out = log.check_out("the watcher", store.peek_out(), out_floor, last_out)
            last_in = log.check_in("the watcher", store.current_in(), in_floor, last_in)
            if h.admin:
                pair = tuple(store.snapshot())
                log.check_out("the watcher", pair[0], out_floor, 0)
                log.check_in("the watcher", pair[1], in_floor, 0)
            if finished:
                return

    threads = [
        threading.Thread(target=guarded(f"thread {k}", out_worker(k), k), daemon=True)
        for k in range(n_out)
    ]
    threads += [
        threading.Thread(
            target=guarded(f"thread {n_out + k}", in_worker(k), n_out + k), daemon=True
        )
        for k in range(n_in)
    ]
    watch = threading.Thread(target=guarded("the watcher", watcher, n_out + n_in), daemon=True)
    for thread in [*threads, watch]:
        thread.start()
    for thread in threads:
        thread.join(_TIMEOUT)
        if thread.is_alive():
            log.problem(f"a thread did not finish within {_TIMEOUT:g} s: a deadlock?")
            return
    done.set()
    watch.join(_TIMEOUT)
    if log.stop:
        return
    log.finish(n_out * ops, _highest(n_in, ops), h.peek_out(), h.current_in())


# -- tasks ---------------------------------------------------------------------------


def check_tasks(subject: Subject) -> None:
    """Three rounds of event-started tasks on an async store, each on a fresh store."""
    ops = _ops(subject.workers)
    for seed, (what, n_out, n_in) in enumerate(_rounds(subject.workers)):
        h = subject.fresh("concurrency")
        assert isinstance(h, AsyncHandle)
        what = what.format(noun="task")
        log = _Log(h.label, h.name, "task")
        h.portal.call(_task_round, h, log, n_out, n_in, ops, seed)
        if not log.stop:
            log.finish(n_out * ops, _highest(n_in, ops), h.peek_out(), h.current_in())
        log.raise_first(what)


async def _task_round(
    h: AsyncHandle, log: _Log, n_out: int, n_in: int, ops: int, seed: int
) -> None:
    import anyio
    import anyio.lowlevel

    store: Any = h.store
    shares = _deal(n_in, ops, seed) if n_in else []
    start = anyio.Event()
    done = anyio.Event()
    remaining = [n_out + n_in]

    async def guarded(name: str, body: Callable[[], Any], worker: bool) -> None:
        try:
            await start.wait()
            await body()
        except Exception as exc:
            log.problem(f"{name} raised {type(exc).__name__}: {exc}")
        finally:
            if worker:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

    def drifter(k: int) -> Callable[[], Awaitable[None]]:
        # Between calls, each task yields to the loop a random 1 to 3 times, so the
        # tasks drift out of step: in lockstep every task would read before any
        # task writes, and a lost update could never show.
        pick = random.Random(seed * 1000 + k).randint

        async def drift() -> None:
            for _ in range(pick(1, 3)):
                await anyio.lowlevel.checkpoint()

        return drift

    def out_worker(k: int) -> Callable[[], Any]:
        async def body() -> None:
            last = 0
            drift = drifter(k)
            for _ in range(ops):
                if log.stop:
                    return
                last = log.got_out(k, last, await store.next_out())
                await drift()

        return body

    def in_worker(k: int) -> Callable[[], Any]:
        async def body() -> None:
            previous = 0
            drift = drifter(n_out + k)
            for seq_num in shares[k]:
                if log.stop:
                    return
                log.started_in(seq_num)
                await store.observed_in(seq_num)
                floor = log.acked_in(seq_num)
                mark = await store.current_in()
                previous = log.check_in(f"task {n_out + k}", mark, floor, previous)
                await drift()

        return body

    async def watcher() -> None:
        last_out = last_in = 0
        while not log.stop:
            finished = done.is_set()
            out_floor, in_floor = log.floors()
            last_out = log.check_out("the watcher", await store.peek_out(), out_floor, last_out)
            last_in = log.check_in("the watcher", await store.current_in(), in_floor, last_in)
            if h.admin:
                pair = tuple(await store.snapshot())
                log.check_out("the watcher", pair[0], out_floor, 0)
                log.check_in("the watcher", pair[1], in_floor, 0)
            if finished:
                return
            await anyio.lowlevel.checkpoint()

    try:
        with anyio.fail_after(_TIMEOUT):
            async with anyio.create_task_group() as group:
                for k in range(n_out):
                    group.start_soon(guarded, f"task {k}", out_worker(k), True)
                for k in range(n_in):
                    group.start_soon(guarded, f"task {n_out + k}", in_worker(k), True)
                group.start_soon(guarded, "the watcher", watcher, False)
                start.set()
    except TimeoutError:
        log.problem(f"the tasks did not finish within {_TIMEOUT:g} s: a deadlock?")
