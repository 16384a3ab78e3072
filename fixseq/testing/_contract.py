"""The check groups as pytest test classes to subclass."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import pytest

from fixseq import AsyncSeqStore, SeqStore

from ._run import GROUPS, async_subject, sync_subject

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from pathlib import Path

    from ._checks import Subject

__all__ = ["AsyncSeqStoreContract", "SeqStoreContract"]

S = TypeVar("S", bound=SeqStore)
A = TypeVar("A", bound=AsyncSeqStore)

_GROUP = {group.name: group for group in GROUPS}


def _run(subject: Subject, name: str) -> None:
    reason = _GROUP[name].check(subject)
    if reason is not None:
        pytest.skip(reason)


class _ContractBase:
    """What both contract classes share: a scratch directory and fresh paths in it."""

    max_examples: ClassVar[int] = 100
    """Hypothesis examples for ``test_model``."""

    tmp_path: Path
    """A fresh directory for this test (pytest's ``tmp_path``), for backing files."""

    @pytest.fixture(autouse=True)
    def _fixseq_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._fixseq_counter = itertools.count(1)

    def fresh_path(self, suffix: str = "") -> Path:
        """Return a path in :attr:`tmp_path` that no earlier call returned (not created).

        ``make_store`` runs many times per test (once per Hypothesis example),
        and each store needs its own backing location.
        """
        return self.tmp_path / f"store-{next(self._fixseq_counter)}{suffix}"


class SeqStoreContract(_ContractBase, Generic[S]):
    """Every check of :func:`~fixseq.testing.check_seq_store` as a named pytest test.

    Subclass it in your test module with a ``Test`` name, define
    :meth:`make_store` and, for a durable store, :meth:`reopen_store`::

        class TestJsonSeqStore(SeqStoreContract[JsonSeqStore]):
            def make_store(self) -> JsonSeqStore:
                return JsonSeqStore(self.fresh_path(".json"))

            def reopen_store(self, store: JsonSeqStore) -> JsonSeqStore:
                store.close()
                return JsonSeqStore(store.path)

    Each check group is one test (``test_basics``, ``test_concurrency``,
    ``test_model``, ...). A group the store cannot take (admin methods,
    ``creation_time``, reopen) is skipped with the reason. Set the class
    attributes :attr:`threads` and :attr:`max_examples` to tune it.
    """

    threads: ClassVar[int] = 8
    """Threads calling the store at once in ``test_concurrency``."""

    def make_store(self) -> S:
        """Return a fresh store whose counters start at 1 and 1 (required)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_store()")

    def reopen_store(self, store: S) -> S:
        """Close ``store`` and open a new one on the same backing location (optional).

        Define it for a durable store: ``test_reopen`` (and the reopen rule of
        ``test_model``) then check that every acknowledged change survives.
        """
        raise NotImplementedError

    def _check(self, name: str) -> None:
        overridden = type(self).reopen_store is not SeqStoreContract.reopen_store
        reopen = self.reopen_store if overridden else None
        _run(sync_subject(self.make_store, reopen, self.threads, self.max_examples), name)

    def test_protocol(self) -> None:
        """The five SeqStore methods exist and are callable."""
        self._check("protocol")

    def test_basics(self) -> None:
        """A fresh store, peek_out against next_out, the inbound mark, reset."""
        self._check("basics")

    def test_long_run(self) -> None:
        """1,000 consecutive next_out() and observed_in(), every result checked."""
        self._check("long_run")

    def test_validation(self) -> None:
        """Bad seq nums raise ValueError/TypeError and change nothing."""
        self._check("validation")

    def test_admin(self) -> None:
        """set_next_out/set_next_in take effect; snapshot agrees (admin stores)."""
        self._check("admin")

    def test_creation_time(self) -> None:
        """creation_time() moves on reset() only (stores that have it)."""
        self._check("creation_time")

    def test_exhaustion(self) -> None:
        """After MAX_SEQ_NUM, next_out() raises and changes nothing (admin stores)."""
        self._check("exhaustion")

    def test_concurrency(self) -> None:
        """No number handed out twice, no inbound update lost, under threads."""
        self._check("concurrency")

    def test_reopen(self) -> None:
        """Each kind of change survives a reopen made right after it (durable stores)."""
        self._check("reopen")

    def test_model(self) -> None:
        """The Hypothesis state machine: random call sequences against a model."""
        self._check("model")


class AsyncSeqStoreContract(_ContractBase, Generic[A]):
    """Every check of :func:`~fixseq.testing.check_async_seq_store` as a named pytest test.

    As :class:`SeqStoreContract`, for an async store: :meth:`make_store` may be
    a coroutine, :meth:`reopen_store` is one. The tests are plain (sync) pytest
    tests that run the store on an event loop in a portal thread, on the
    backend of the ``anyio_backend`` fixture (from anyio's pytest plugin:
    ``"asyncio"`` unless your conftest overrides it, for example with
    ``params=["asyncio", "trio"]`` to run every check under both)::

        class TestAsyncJsonSeqStore(AsyncSeqStoreContract[AsyncJsonSeqStore]):
            async def make_store(self) -> AsyncJsonSeqStore:
                return await AsyncJsonSeqStore.open(self.fresh_path(".json"))
    """

    tasks: ClassVar[int] = 50
    """Tasks calling the store at once in ``test_concurrency``."""

    def make_store(self) -> A | Awaitable[A]:
        """Return a fresh store at 1 and 1, or an awaitable of one (required)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_store()")

    async def reopen_store(self, store: A) -> A:
        """Close ``store`` and open a new one on the same backing location (optional)."""
        raise NotImplementedError

    def _check(self, name: str, anyio_backend: Any) -> None:
        if isinstance(anyio_backend, tuple):
            backend, options = anyio_backend
        else:
            backend, options = anyio_backend, None
        overridden = type(self).reopen_store is not AsyncSeqStoreContract.reopen_store
        reopen = self.reopen_store if overridden else None
        with async_subject(
            self.make_store, reopen, self.tasks, self.max_examples, str(backend), options
        ) as subject:
            _run(subject, name)

    def test_protocol(self, anyio_backend: Any) -> None:
        """The five AsyncSeqStore methods exist and return awaitables."""
        self._check("protocol", anyio_backend)

    def test_basics(self, anyio_backend: Any) -> None:
        """A fresh store, peek_out against next_out, the inbound mark, reset."""
        self._check("basics", anyio_backend)

    def test_long_run(self, anyio_backend: Any) -> None:
        """1,000 consecutive next_out() and observed_in(), every result checked."""
        self._check("long_run", anyio_backend)

    def test_validation(self, anyio_backend: Any) -> None:
        """Bad seq nums raise ValueError/TypeError and change nothing."""
        self._check("validation", anyio_backend)

    def test_admin(self, anyio_backend: Any) -> None:
        """set_next_out/set_next_in take effect; snapshot agrees (admin stores)."""
        self._check("admin", anyio_backend)

    def test_creation_time(self, anyio_backend: Any) -> None:
        """creation_time() moves on reset() only (stores that have it)."""
        self._check("creation_time", anyio_backend)

    def test_exhaustion(self, anyio_backend: Any) -> None:
        """After MAX_SEQ_NUM, next_out() raises and changes nothing (admin stores)."""
        self._check("exhaustion", anyio_backend)

    def test_concurrency(self, anyio_backend: Any) -> None:
        """No number handed out twice, no inbound update lost, under tasks."""
        self._check("concurrency", anyio_backend)

    def test_reopen(self, anyio_backend: Any) -> None:
        """Each kind of change survives a reopen made right after it (durable stores)."""
        self._check("reopen", anyio_backend)

    def test_model(self, anyio_backend: Any) -> None:
        """The Hypothesis state machine: random call sequences against a model."""
        self._check("model", anyio_backend)
