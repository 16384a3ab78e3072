"""The memory twins pass the conformance kit: both entry points, sync and async,
under asyncio and trio, with the kit's default settings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from fixseq import AsyncMemorySeqStore, MemorySeqStore, SeqCounters, to_async
from fixseq.testing import (
    AsyncSeqStoreContract,
    SeqStoreContract,
    check_async_seq_store,
    check_seq_store,
)

if TYPE_CHECKING:
    import datetime


def test_memory_store_passes_the_kit() -> None:
    started = time.perf_counter()
    check_seq_store(MemorySeqStore)
    # Not an assertion on time (the machine is shared and noisy): a record of it.
    print(f"check_seq_store(MemorySeqStore): {time.perf_counter() - started:.2f} s")


class TestMemorySeqStoreContract(SeqStoreContract[MemorySeqStore]):
    def make_store(self) -> MemorySeqStore:
        return MemorySeqStore()


def test_async_memory_store_passes_the_kit(anyio_backend: str) -> None:
    check_async_seq_store(AsyncMemorySeqStore, backend=anyio_backend)


class TestAsyncMemorySeqStoreContract(AsyncSeqStoreContract[AsyncMemorySeqStore]):
    def make_store(self) -> AsyncMemorySeqStore:
        return AsyncMemorySeqStore()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_memory_store_as_thread_shell_passes_the_kit(backend: str) -> None:
    # to_async() runs each call in a worker thread: the race checks then cover
    # anyio's thread offload and the core's lock together.
    check_async_seq_store(lambda: to_async(MemorySeqStore()), max_examples=20, backend=backend)


class DictDiskCounters(SeqCounters):
    """A durable store on the core (group commit, reservation) whose disk is a dict."""

    _durable = True

    def __init__(self, disk: dict[str, Any], *, reserve: int = 1) -> None:
        super().__init__()
        self._set_reserve(reserve)
        self.disk = disk
        if disk:
            self._restore(disk["next_out"], disk["next_in"], disk["created"])
        else:
            disk.update(next_out=1, next_in=1, created=self.creation_time())

    def _persist(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        self.disk.update(next_out=next_out, next_in=next_in, created=created)


@pytest.mark.parametrize("reserve", [1, 10])
def test_durable_core_store_passes_the_kit_with_reopen(reserve: int) -> None:
    # The core's write path (group commit, and with reserve > 1 the outbound
    # reservation that close() must turn back into the exact value) under the
    # kit's reopen checks.
    def reopen(store: DictDiskCounters) -> DictDiskCounters:
        store.close()
        return DictDiskCounters(store.disk, reserve=reserve)

    check_seq_store(lambda: DictDiskCounters({}, reserve=reserve), reopen=reopen, max_examples=50)
