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
from ._damage import check_damage
from ._handles import AsyncHandle, Handle, SyncHandle, Violation, maybe_await
from ._machine import StoreMachineBase, kit_settings
from ._powercut import PowerCutSkip, run_power_cut

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable, Collection, Iterator

    from anyio.from_thread import BlockingPortal

__all__ = [
    "BACKENDS",
    "GROUPS",
    "Group",
    "async_opener",
    "async_subject",
    "check_async_power_cut",
    "check_async_seq_store",
    "check_model",
    "check_power_cut",
    "check_seq_store",
    "power_cut_group",
    "run_groups",
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
    Group("damage", check_damage),
    Group("model", check_model),
)
"""Every check group, cheapest and most specific first; the model comes last."""


def _run_model(subject: Subject) -> None:
    class Model(StoreMachineBase):
        def open_handle(self) -> Handle:
            return subject.fresh("model")

    run_state_machine_as_test(Model, settings=kit_settings(subject.max_examples))


def _check_params(
    make_store: object,
    workers: int,
    workers_name: str,
    max_examples: int,
    files: object = None,
    damage_sample: int = 1024,
) -> None:
    if not callable(make_store):
        raise TypeError(f"make_store must be callable, not {type(make_store).__name__}")
    if files is not None and not callable(files):
        raise TypeError(f"files must be callable or None, not {type(files).__name__}")
    _counts(
        (workers_name, workers), ("max_examples", max_examples), ("damage_sample", damage_sample)
    )


def _counts(*pairs: tuple[str, object]) -> None:
    for name, value in pairs:
        if type(value) is not int:
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def sync_subject(
    make_store: Callable[[], Any],
    reopen: Callable[[Any], Any] | None,
    threads: int,
    max_examples: int,
    files: Callable[[Any], Any] | None = None,
    damage_sample: int = 1024,
) -> Subject:
    """Describe a sync store under test."""
    _check_params(make_store, threads, "threads", max_examples, files, damage_sample)
    return Subject(
        fresh=lambda label: SyncHandle(make_store(), label, reopen=reopen),
        can_reopen=reopen is not None,
        workers=threads,
        max_examples=max_examples,
        concurrency=check_threads,
        model=_run_model,
        files=files,
        damage_sample=damage_sample,
    )


@contextlib.contextmanager
def async_subject(
    make_store: Callable[[], Any],
    reopen: Callable[[Any], Awaitable[Any]] | None,
    tasks: int,
    max_examples: int,
    backend: str,
    backend_options: dict[str, Any] | None = None,
    files: Callable[[Any], Any] | None = None,
    damage_sample: int = 1024,
) -> Iterator[Subject]:
    """Describe an async store under test, on an event loop running in a portal thread."""
    from anyio.from_thread import start_blocking_portal

    _check_params(make_store, tasks, "tasks", max_examples, files, damage_sample)
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
            files=files,
            damage_sample=damage_sample,
        )


_GROUP_NAMES = tuple(group.name for group in GROUPS)


def _select(groups: Collection[str] | None) -> tuple[Group, ...]:
    if groups is None:
        return GROUPS
    if isinstance(groups, str):
        raise TypeError("groups must be a collection of group names, not a str")
    unknown = sorted(set(groups) - set(_GROUP_NAMES))
    if unknown:
        raise ValueError(f"unknown check group(s) {unknown}; the groups are {list(_GROUP_NAMES)}")
    if not groups:
        raise ValueError("groups names no check group")
    return tuple(group for group in GROUPS if group.name in groups)


def _message(exc: BaseException) -> str:
    """An exception's message with its notes (Hypothesis puts the shrunk calls there)."""
    text = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
    notes = getattr(exc, "__notes__", None)
    if notes:
        text += "\n" + "\n".join(str(note) for note in notes)
    return text


def _group_text(name: str, exc: Exception) -> str:
    text = _message(exc)
    if not isinstance(exc, AssertionError):
        return f"[{name}] the check raised {text}"
    return text if text.startswith(f"[{name}]") else f"[{name}] {text}"


def run_groups(subject: Subject, groups: Collection[str] | None = None) -> None:
    """Run each selected check group on its own, then report every group that failed.

    A group that fails (a violation, or any other exception: a store that
    raised where the kit did not expect it) does not stop the others: each
    starts from a fresh store. One failure is re-raised as it is; several
    become one ``AssertionError`` that starts with the first failure's
    message, then lists every failed group and each message.

    Raises:
        AssertionError: At least one group failed.
    """
    failures: list[tuple[str, Exception]] = []
    for group in _select(groups):
        try:
            group.check(subject)
        except Exception as exc:
            failures.append((group.name, exc))
    if not failures:
        return
    first = failures[0][1]
    if len(failures) == 1 and isinstance(first, AssertionError):
        raise first
    texts = [_group_text(name, exc) for name, exc in failures]
    if len(failures) == 1:
        raise Violation(texts[0]) from first
    names = ", ".join(name for name, _ in failures)
    parts = [texts[0], "", f"{len(failures)} check groups failed: {names}"]
    for text in texts[1:]:
        parts += ["", text]
    raise Violation("\n".join(parts)) from first


def check_seq_store(
    make_store: Callable[[], S],
    *,
    reopen: Callable[[S], S] | None = None,
    files: Callable[[S], Collection[str | os.PathLike[str]]] | None = None,
    threads: int = 8,
    max_examples: int = 100,
    damage_sample: int = 1024,
    groups: Collection[str] | None = None,
) -> None:
    """Check that a blocking store keeps the :class:`~fixseq.SeqStore` contract.

    Runs every check group (protocol, basics, long run, admin, validation,
    creation time, exhaustion, concurrency, reopen, damage, model), each on
    its own, and reports every group that failed. Admin checks run only on a store with
    ``set_next_out``/``set_next_in``/``snapshot``; ``creation_time()`` is checked
    only where present; the kit never calls ``close()`` itself.

    Args:
        make_store: Returns a fresh store whose counters start at 1 and 1. It
            is called once per check group, per concurrency round and per
            Hypothesis example, so each call needs its own backing location.
        reopen: For a durable store: close the given store and open a new one
            on the same backing location. When given, the kit checks that every
            acknowledged change survives a reopen made right after it. It must
            accept a store that is already closed (``close()`` is idempotent).
        files: For a store with backing files: returns the paths of the given
            store's files. Then the damage group closes a store in a known
            state, damages each file in every way (each byte XOR 0x01 and
            0xFF, each truncation, emptied; a sample for a file over 4 KiB)
            and requires that ``reopen`` either raises or comes back reusing
            no acknowledged outbound number and with the inbound mark not
            ahead (it may lag one change). Needs ``reopen``.
        threads: Threads calling the store at once in the concurrency group.
        max_examples: Hypothesis examples for the state machine; raise it for
            a deeper search.
        damage_sample: For a file over 4 KiB, how many byte positions (each
            flipped both ways) and how many truncation lengths are tried.
        groups: Run only these check groups (names as in the messages, e.g.
            ``{"damage", "reopen"}``); all of them by default.

    Raises:
        AssertionError: The store broke the contract; the message starts with
            the first failed check group in brackets and names what broke
            (for the state machine, Hypothesis adds the shrunk sequence of
            calls); when several groups failed, it then lists them all.
        TypeError: ``make_store`` or ``files`` is not callable, a count is not
            an int, or ``groups`` is a str.
        ValueError: A count is below 1, or ``groups`` names an unknown group.
    """
    run_groups(
        sync_subject(make_store, reopen, threads, max_examples, files, damage_sample), groups
    )


def check_async_seq_store(
    make_store: Callable[[], A | Awaitable[A]],
    *,
    reopen: Callable[[A], Awaitable[A]] | None = None,
    files: Callable[[A], Collection[str | os.PathLike[str]]] | None = None,
    tasks: int = 50,
    max_examples: int = 100,
    backend: str = "asyncio",
    damage_sample: int = 1024,
    groups: Collection[str] | None = None,
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
            (it may already be closed) and open a new one on the same backing location.
        files: As for :func:`check_seq_store` (a plain function, given the
            async store).
        tasks: Tasks calling the store at once in the concurrency group.
        max_examples: Hypothesis examples for the state machine.
        backend: ``"asyncio"`` or ``"trio"``.
        damage_sample: As for :func:`check_seq_store`.
        groups: As for :func:`check_seq_store`.

    Raises:
        AssertionError: The store broke the contract (see :func:`check_seq_store`).
        TypeError: ``make_store`` or ``files`` is not callable, a count is not
            an int, or ``groups`` is a str.
        ValueError: A count is below 1, ``backend`` is unknown, or ``groups``
            names an unknown group.
    """
    with async_subject(
        make_store, reopen, tasks, max_examples, backend, None, files, damage_sample
    ) as subject:
        run_groups(subject, groups)


# -- power cuts ------------------------------------------------------------------------


def _power_cut_params(make_store: object, steps: int, max_states: int, seed: int) -> None:
    if not callable(make_store):
        raise TypeError(f"make_store must be callable, not {type(make_store).__name__}")
    _counts(("steps", steps), ("max_states", max_states))
    if type(seed) is not int:
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (one close and reopen half way), got {steps}")


def power_cut_group(
    open_store: Callable[[str], Handle],
    *,
    steps: int,
    max_states: int,
    seed: int,
    directory: str | os.PathLike[str] | None,
) -> str | None:
    """Run the power-cut group; return the reason if the kit cannot see the store's I/O.

    Raises:
        Violation: A simulated power cut broke the contract.
    """
    where = None if directory is None else str(directory)
    try:
        run_power_cut(
            open_store, "power_cut", steps=steps, max_states=max_states, seed=seed, directory=where
        )
    except PowerCutSkip as skip:
        return str(skip)
    return None


def _skip(reason: str) -> None:
    import pytest

    pytest.skip(f"power cut not checked: {reason}")


def check_power_cut(
    make_store: Callable[[str], S],
    *,
    steps: int = 200,
    max_states: int = 1000,
    seed: int = 0,
    directory: str | os.PathLike[str] | None = None,
) -> None:
    """Check that no simulated power cut makes a store reuse or lose a number.

    The kit calls ``make_store(directory)`` on an empty directory, drives the
    store (``steps`` calls of ``next_out()`` and ``observed_in()`` in a seeded
    random mix, with one ``close()`` and ``make_store(directory)`` half way,
    then a ``close()``) and records the store's file operations in that
    directory (``os.open``/``close``/``write``/``pwrite``/``ftruncate``/
    ``fsync``/``fdatasync``/``rename``/``replace``/``link``/``unlink`` and
    files opened with ``open()``). From the record it builds the directory as
    a power cut after any operation could leave it: writes not yet synced
    dropped, or kept up to any point, the first one lost torn at a 512-byte
    boundary, and a file created or renamed in a directory not yet synced
    undone. Each distinct image is copied to a fresh directory and opened
    with ``make_store``: ``peek_out()`` must be above every number
    acknowledged before the cut (never a silent 1), and ``current_in()`` not
    below any acknowledged ``observed_in()`` nor ahead of every one begun. An
    image the store refuses to open (an exception) is accepted. It is
    deterministic for a given ``seed``.

    A store whose I/O the kit cannot see (SQLite, whose C library writes
    with its own calls; a network database; ``mmap``) is skipped with that
    reason, never passed: the kit compares the files it modelled with the
    real directory.

    Args:
        make_store: Opens the store in the given directory, creating it if the
            directory holds none. It must keep all of its files there.
        steps: Calls in the drive.
        max_states: Distinct crash images opened at most; beyond that, an even
            spread of them.
        seed: Seeds the drive's mix of calls.
        directory: Where the kit makes its scratch directories (the system's
            temporary directory by default); all are removed afterwards.

    Raises:
        AssertionError: A crash image reopened in a state that reuses an
            acknowledged number, lost an acknowledged inbound mark, or ran
            the mark ahead; the message names the cut, what was kept and the
            state.
        pytest.skip.Exception: The kit cannot see or model the store's I/O
            (a skip under pytest; the reason says why).
        TypeError: ``make_store`` is not callable, or a count is not an int.
        ValueError: ``steps`` is below 2 or ``max_states`` below 1.
    """
    _power_cut_params(make_store, steps, max_states, seed)

    def open_store(path: str) -> Handle:
        return SyncHandle(make_store(path), "power_cut", reopen=None)

    reason = power_cut_group(
        open_store, steps=steps, max_states=max_states, seed=seed, directory=directory
    )
    if reason is not None:
        _skip(reason)


def check_async_power_cut(
    make_store: Callable[[str], A | Awaitable[A]],
    *,
    steps: int = 200,
    max_states: int = 1000,
    seed: int = 0,
    directory: str | os.PathLike[str] | None = None,
    backend: str = "asyncio",
) -> None:
    """:func:`check_power_cut` for an async store, on the named anyio backend.

    ``make_store(directory)`` may return the store or an awaitable of it
    (``AsyncFooStore.open`` works); its I/O is recorded in whichever worker
    thread it runs.

    Args:
        make_store: Opens (or creates) the store in the given directory.
        steps: As for :func:`check_power_cut`.
        max_states: As for :func:`check_power_cut`.
        seed: As for :func:`check_power_cut`.
        directory: As for :func:`check_power_cut`.
        backend: ``"asyncio"`` or ``"trio"``.

    Raises:
        AssertionError: As for :func:`check_power_cut`.
        pytest.skip.Exception: As for :func:`check_power_cut`.
        TypeError: As for :func:`check_power_cut`.
        ValueError: As for :func:`check_power_cut`, or ``backend`` is unknown.
    """
    _power_cut_params(make_store, steps, max_states, seed)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal(backend) as portal:
        reason = power_cut_group(
            async_opener(make_store, portal),
            steps=steps,
            max_states=max_states,
            seed=seed,
            directory=directory,
        )
    if reason is not None:
        _skip(reason)


def async_opener(
    make_store: Callable[[str], Any], portal: BlockingPortal
) -> Callable[[str], Handle]:
    """Open an async store in a directory, on the portal's loop, as a handle."""

    async def make(path: str) -> Any:
        return await maybe_await(make_store(path))

    def open_store(path: str) -> Handle:
        return AsyncHandle(portal.call(make, path), "power_cut", reopen=None, portal=portal)

    return open_store
