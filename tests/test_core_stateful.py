"""Hypothesis state machines: the memory twins held against a plain model."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fixseq import MAX_SEQ_NUM, AsyncMemorySeqStore, MemorySeqStore, SeqNumExhaustedError

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

seq_nums = st.one_of(
    st.integers(min_value=1, max_value=200),
    st.integers(min_value=MAX_SEQ_NUM - 3, max_value=MAX_SEQ_NUM),
)


class Model:
    """What the counters must be: the plainest possible statement of the contract."""

    def __init__(self) -> None:
        self.next_out = 1
        self.next_in = 1


class CountersMachine(RuleBasedStateMachine):
    """Drives one store through every method; `call` runs a store method (sync or async)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.created = None
        self.store = self.make_store()

    def make_store(self) -> Any:
        raise NotImplementedError

    def call(self, name: str, *args: int) -> Any:
        raise NotImplementedError

    @rule()
    def next_out(self) -> None:
        if self.model.next_out > MAX_SEQ_NUM:
            with pytest.raises(SeqNumExhaustedError):
                self.call("next_out")
            return
        assert self.call("next_out") == self.model.next_out
        self.model.next_out += 1

    @rule()
    def peek_out(self) -> None:
        assert self.call("peek_out") == self.model.next_out
        assert self.call("peek_out") == self.model.next_out

    @rule(seq_num=seq_nums)
    def observed_in(self, seq_num: int) -> None:
        self.call("observed_in", seq_num)
        self.model.next_in = max(self.model.next_in, seq_num + 1)

    @rule()
    def reset(self) -> None:
        before = self.call("creation_time")
        self.call("reset")
        self.model.next_out = self.model.next_in = 1
        assert self.call("creation_time") >= before

    @rule(seq_num=seq_nums)
    def set_next_out(self, seq_num: int) -> None:
        created = self.call("creation_time")
        self.call("set_next_out", seq_num)
        self.model.next_out = seq_num
        assert self.call("creation_time") == created

    @rule(seq_num=seq_nums)
    def set_next_in(self, seq_num: int) -> None:
        self.call("set_next_in", seq_num)
        self.model.next_in = seq_num

    @precondition(lambda self: self.model.next_out <= MAX_SEQ_NUM)
    @rule()
    def peek_agrees_with_next(self) -> None:
        peeked = self.call("peek_out")
        assert self.call("next_out") == peeked
        self.model.next_out += 1

    @invariant()
    def counters_match_the_model(self) -> None:
        assert self.call("current_in") == self.model.next_in
        snap = self.call("snapshot")
        assert (snap.next_out, snap.next_in) == (self.model.next_out, self.model.next_in)


class SyncMachine(CountersMachine):
    def make_store(self) -> MemorySeqStore:
        return MemorySeqStore()

    def call(self, name: str, *args: int) -> Any:
        return getattr(self.store, name)(*args)

    def teardown(self) -> None:
        self.store.close()


def async_machine(backend: str) -> type[CountersMachine]:
    class AsyncMachine(CountersMachine):
        def make_store(self) -> AsyncMemorySeqStore:
            self.stack = ExitStack()
            self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal(backend))
            return AsyncMemorySeqStore()

        def call(self, name: str, *args: int) -> Any:
            method: Callable[..., Any] = getattr(self.store, name)
            return self.portal.call(method, *args)

        def teardown(self) -> None:
            self.portal.call(self.store.aclose)
            self.stack.close()

    AsyncMachine.__name__ = f"AsyncMachine_{backend}"
    return AsyncMachine


TestSyncMemory = SyncMachine.TestCase
TestAsyncMemoryAsyncio = async_machine("asyncio").TestCase
TestAsyncMemoryTrio = async_machine("trio").TestCase
