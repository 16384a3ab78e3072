"""The memory twins pass the conformance kit: both entry points, sync and async,
under asyncio and trio, with the kit's default settings."""

from __future__ import annotations

import time

import pytest

from fixseq import AsyncMemorySeqStore, MemorySeqStore, to_async
from fixseq.testing import (
    AsyncSeqStoreContract,
    SeqStoreContract,
    check_async_seq_store,
    check_seq_store,
)


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
