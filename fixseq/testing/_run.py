"""The check groups in order, and the two entry points that run them all."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from hypothesis.stateful import run_state_machine_as_test

from fixseq import AsyncSeqStore, SeqStore

from ._checks import (
    Subject,
    check_admin,
    check_basics,
    check_creation_time,
    check_exhaustion,
    check_long_run,
    check_protocol,
    check_reopen,
    check_validation,
)
from ._concurrency import check_concurrency, check_tasks, check_threads
from ._handles import AsyncHandle, Handle, SyncHandle, maybe_await
from ._machine import StoreMachineBase, kit_settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from anyio.from_thread import BlockingPortal

__all__ = [
    "BACKENDS",
    "GROUPS",
    "Group",
    "async_subject",
    "check_async_seq_store",
    "check_model",
    "check_seq_store",
    "sync_subject",
]

S = TypeVar("S", bound=SeqStore)
A = TypeVar("A", bound=AsyncSeqStore)

BACKENDS = ("asyncio", "trio")


class Group(NamedTuple):
    """One named check group: the contract classes turn each into a test."""

    name: str
    check: Callable[[Subject], str | None]
    """Raises a Violation, returns None (passed) or a reason it does not apply."""


def check_model(subject: Subject) -> str | None:
    """Run the Hypothesis state machine against the subject."""
    subject.model(subject)
    return None


GROUPS: tuple[Group, ...] = (
    Group("protocol", check_protocol),
    Group("basics", check_basics),
    Group("long_run", check_long_run),
    Group("admin", check_admin),
    Group("validation", check_validation),
    Group("creation_time", check_creation_time),
    Group("exhaustion", check_exhaustion),
    Group("concurrency", check_concurrency),
    Group("reopen", check_reopen),
    Group("model", check_model),
)
"""Every check group, cheapest and most specific first; the model comes last."""


def _run_model(subject: Subject) -> None:
    class Model(StoreMachineBase):
        def open_handle(self) -> Handle:
            return subject.fresh("model")

    run_state_machine_as_test(Model, settings=kit_settings(subject.max_examples))


def _check_params(make_store: object, workers: int, workers_name: str, max_examples: int) -> None:
    if not callable(make_store):
        raise TypeError(f"make_store must be callable, not {type(make_store).__name__}")
    for name, value in ((workers_name, workers), ("max_examples", max_examples)):
        if type(value) is not int:
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def sync_subject(
    make_store: Callable[[], Any],
    reopen: Callable[[Any], Any] | None,
    threads: int,
    max_examples: int,
) -> Subject:
    """Describe a sync store under test."""
    _check_params(make_store, threads, "threads", max_examples)
    return Subject(
        fresh=lambda label: SyncHandle(make_store(), label, reopen=reopen),
        can_reopen=reopen is not None,
        workers=threads,
        max_examples=max_examples,
        concurrency=check_threads,
        model=_run_model,
    )


@contextlib.contextmanager
def async_subject(
    make_store: Callable[[], Any],
    reopen: Callable[[Any], Awaitable[Any]] | None,
    tasks: int,
    max_examples: int,
    backend: str,
    backend_options: dict[str, Any] | None = None,
) -> Iterator[Subject]:
    """Describe an async store under test, on an event loop running in a portal thread."""
    from anyio.from_thread import start_blocking_portal

    _check_params(make_store, tasks, "tasks", max_examples)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")

    with start_blocking_portal(backend, backend_options) as portal:

        async def make() -> Any:
            return await maybe_await(make_store())

        def fresh(label: str, portal: BlockingPortal = portal) -> Handle:
            return AsyncHandle(portal.call(make), label, reopen=reopen, portal=portal)

        yield Subject(
            fresh=fresh,
            can_reopen=reopen is not None,
            workers=tasks,
            max_examples=max_examples,
            concurrency=check_tasks,
            model=_run_model,
        )


def _run_all(subject: Subject) -> None:
    for group in GROUPS:
        group.check(subject)


def check_seq_store(
    make_store: Callable[[], S],
    *,
    reopen: Callable[[S], S] | None = None,
    threads: int = 8,
    max_examples: int = 100,
) -> None:
    """Check that a blocking store keeps the :class:`~fixseq.SeqStore` contract.

    Runs every check group in turn (protocol, basics, long run, admin,
    validation, creation time, exhaustion, concurrency, reopen, model) and raises at
    the first violation. Admin checks run only on a store with
    ``set_next_out``/``set_next_in``/``snapshot``; ``creation_time()`` is checked
    only where present; the kit never calls ``close()`` itself.

    Args:
        make_store: Returns a fresh store whose counters start at 1 and 1. It
            is called once per check group, per concurrency round and per
            Hypothesis example, so each call needs its own backing location.
        reopen: For a durable store: close the given store and open a new one
            on the same backing location. When given, the kit checks that every
            acknowledged change survives a reopen made right after it.
        threads: Threads calling the store at once in the concurrency group.
        max_examples: Hypothesis examples for the state machine; raise it for
            a deeper search.

    Raises:
        AssertionError: The store broke the contract; the message starts with
            the check group in brackets and names what broke (for the state
            machine, Hypothesis adds the shrunk sequence of calls).
        TypeError: ``make_store`` is not callable, or a count is not an int.
        ValueError: ``threads`` or ``max_examples`` is below 1.
    """
    _run_all(sync_subject(make_store, reopen, threads, max_examples))


def check_async_seq_store(
    make_store: Callable[[], A | Awaitable[A]],
    *,
    reopen: Callable[[A], Awaitable[A]] | None = None,
    tasks: int = 50,
    max_examples: int = 100,
    backend: str = "asyncio",
) -> None:
    """Check that an async store keeps the :class:`~fixseq.AsyncSeqStore` contract.

    Called from sync code: it starts an event loop of the named anyio backend in
    a portal thread, makes and drives every store on that loop, and runs the
    same check groups as :func:`check_seq_store`, with ``tasks`` concurrent
    tasks in place of threads.

    Args:
        make_store: Returns a fresh store whose counters start at 1 and 1, or an
            awaitable of one (``AsyncFileSeqStore.open`` works). It runs on the
            event loop.
        reopen: For a durable store, an async callable: close the given store
            and open a new one on the same backing location.
        tasks: Tasks calling the store at once in the concurrency group.
        max_examples: Hypothesis examples for the state machine.
        backend: ``"asyncio"`` or ``"trio"``.

    Raises:
        AssertionError: The store broke the contract (see :func:`check_seq_store`).
        TypeError: ``make_store`` is not callable, or a count is not an int.
        ValueError: ``tasks`` or ``max_examples`` is below 1, or ``backend`` is unknown.
    """
    with async_subject(make_store, reopen, tasks, max_examples, backend) as subject:
        _run_all(subject)
