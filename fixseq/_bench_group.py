"""``fixseq bench --group``: group commit and reservation, each beside its one-caller rate.

Where the plain rows set a store beside a raw floor, these set a store's
concurrent or reserving use beside the same store used by one caller, in the
same run, interleaved (the figures issue 10 names):

* 16 threads sharing one durable store, against one thread on it;
* 64 asyncio tasks sharing one store's async twin, against one task;
* 16 threads on 16 sessions of one SQLite database, against one session;
* ``reserve=1000`` against ``fsync=0`` (one thread each);
* for a ``postgresql:`` URL named: 8 threads on one session, against one thread.

Every call on both sides does the same number of ``next_out()`` calls, so the
two rates compare directly; the row reports ``next_out()`` calls per second.
Private operator support: it uses only the public API, the URL parser and the
interleaved timer of :mod:`fixseq._bench`.
"""

from __future__ import annotations

import threading
import urllib.parse
from contextlib import ExitStack
from typing import TYPE_CHECKING

import anyio
from anyio.from_thread import start_blocking_portal

from ._bench import measure
from ._urls import open_store, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._protocols import AdminSeqStore, AsyncSeqStore

__all__ = ["ThreadGang", "group_rows"]

_PER_WORKER = 20  # next_out() calls each worker makes per measured call


class ThreadGang:
    """Persistent threads that each run their own work once per call, started together."""

    def __init__(self, works: Sequence[Callable[[], object]]) -> None:
        self._go = threading.Barrier(len(works) + 1)
        self._done = threading.Barrier(len(works) + 1)
        self._stop = False
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._loop, args=(work,), daemon=True) for work in works
        ]
        for thread in self._threads:
            thread.start()

    def _loop(self, work: Callable[[], object]) -> None:
        while True:
            self._go.wait()
            if self._stop:
                return
            try:
                work()
            except BaseException as exc:  # reported by the caller of __call__
                self._errors.append(exc)
            self._done.wait()

    def __call__(self) -> None:
        """Let every thread run its work once; return when all have (re-raising a failure)."""
        self._go.wait()
        self._done.wait()
        if self._errors:
            raise self._errors[0]

    def close(self) -> None:
        """Stop and join the threads."""
        self._stop = True
        self._go.wait()
        for thread in self._threads:
            thread.join()


def _repeat(op: Callable[[], object], times: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(times):
            op()

    return run


def _gang(stack: ExitStack, works: Sequence[Callable[[], object]]) -> ThreadGang:
    gang = ThreadGang(works)
    stack.callback(gang.close)
    return gang


def _row(
    url: str,
    load: str,
    floor: str,
    subject: Callable[[], object],
    baseline: Callable[[], object],
    per_call: int,
    seconds: float,
) -> dict[str, object]:
    result = measure(subject, baseline, seconds=seconds)
    return {
        "url": redact_url(url),
        "load": load,
        "ops_per_s": round(result.ops_per_s * per_call, 1),
        "floor": floor,
        "floor_ops_per_s": round(result.floor_ops_per_s * per_call, 1),
        "ratio": round(result.ratio, 3),
    }


def _threads_row(
    stack: ExitStack,
    url: str,
    stores: Sequence[AdminSeqStore],
    threads: int,
    seconds: float,
    *,
    load: str,
    floor: str,
) -> dict[str, object]:
    """``threads`` workers (on ``stores`` round-robin) against one worker on ``stores[0]``."""
    works = [_repeat(stores[i % len(stores)].next_out, _PER_WORKER) for i in range(threads)]
    many = _gang(stack, works)
    one = _gang(stack, [_repeat(stores[0].next_out, _PER_WORKER * threads)])
    return _row(url, load, floor, many, one, _PER_WORKER * threads, seconds)


def _tasks_row(
    stack: ExitStack, url: str, store: AdminSeqStore, tasks: int, seconds: float
) -> dict[str, object]:
    twin: AsyncSeqStore = store.as_async()  # type: ignore[attr-defined]
    portal = stack.enter_context(start_blocking_portal("asyncio"))

    async def spread(count: int, each: int) -> None:
        async def worker() -> None:
            for _ in range(each):
                await twin.next_out()

        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(worker)

    total = _PER_WORKER * tasks
    return _row(
        url,
        f"{tasks} asyncio tasks",
        "same store, 1 task",
        lambda: portal.call(spread, tasks, _PER_WORKER),
        lambda: portal.call(spread, 1, total),
        total,
        seconds,
    )


def _with(url: str, **params: str) -> str:
    extra = urllib.parse.urlencode(params)
    return url + ("&" if "?" in url else "?") + extra


def group_rows(
    directory: str,
    seconds: float,
    *,
    postgres_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, object]]:
    """Measure the group-commit and reservation rows; scratch stores go in ``directory``.

    Args:
        directory: Where the scratch file and SQLite stores are made.
        seconds: Time per row, both sides together.
        postgres_url: A ``postgresql:`` URL with a scratch ``session=`` for the
            PostgreSQL row, or ``None`` to leave it out.
        progress: Called with a line saying what is being measured.

    Returns:
        One result per row, in ``fixseq bench --json``'s form plus a ``load`` key.
    """
    quoted = urllib.parse.quote(directory)
    rows: list[dict[str, object]] = []

    def say(text: str) -> None:
        if progress is not None:
            progress(text)

    file_url = f"file:{quoted}/group.seq"
    with ExitStack() as stack:
        store = stack.enter_context(open_store(file_url))
        say(f"measuring {file_url}: 16 threads beside 1")
        rows.append(
            _threads_row(
                stack,
                file_url,
                [store],
                16,
                seconds,
                load="16 threads",
                floor="same store, 1 thread",
            )
        )
        say(f"measuring {file_url}: 64 asyncio tasks beside 1")
        rows.append(_tasks_row(stack, file_url, store, 64, seconds))

    sqlite_url = f"sqlite:{quoted}/group.db"
    with ExitStack() as stack:
        stores = [
            stack.enter_context(open_store(_with(sqlite_url, session=f"group-{i}")))
            for i in range(16)
        ]
        say(f"measuring {sqlite_url}: 16 threads on 16 sessions beside 1")
        rows.append(
            _threads_row(
                stack,
                sqlite_url,
                stores,
                16,
                seconds,
                load="16 threads on 16 sessions",
                floor="1 thread, 1 session",
            )
        )

    reserve_url = f"file:{quoted}/reserve.seq?reserve=1000"
    nosync_url = f"file:{quoted}/nosync.seq?fsync=0"
    with open_store(reserve_url) as reserving, open_store(nosync_url) as nosync:
        say(f"measuring {reserve_url} beside {nosync_url}")
        rows.append(
            _row(
                reserve_url,
                "1 thread",
                "FileSeqStore(fsync=False), 1 thread",
                reserving.next_out,
                nosync.next_out,
                1,
                seconds,
            )
        )

    if postgres_url is not None:
        with ExitStack() as stack:
            pg = stack.enter_context(open_store(postgres_url))
            say(f"measuring {redact_url(postgres_url)}: 8 threads beside 1")
            rows.append(
                _threads_row(
                    stack,
                    postgres_url,
                    [pg],
                    8,
                    seconds,
                    load="8 threads",
                    floor="same store, 1 thread",
                )
            )
    return rows
