"""Correct duck-typed stores pass the kit, in every form it comes in; the exported
state machines catch defects on their own; parameters are validated."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import kit_stores as ks
import pytest
from hypothesis.stateful import run_state_machine_as_test

from fixseq.testing import (
    AsyncSeqStoreContract,
    AsyncSeqStoreMachine,
    SeqStoreContract,
    SeqStoreMachine,
    check_async_seq_store,
    check_seq_store,
)
from fixseq.testing._machine import kit_settings
from fixseq.testing._run import GROUPS

if TYPE_CHECKING:
    from pathlib import Path


# -- correct stores pass -------------------------------------------------------------


def test_correct_store_passes() -> None:
    check_seq_store(ks.DictSeqStore, reopen=ks.reopen_dict, max_examples=30)


def test_five_method_store_passes() -> None:
    check_seq_store(ks.FiveMethodStore, max_examples=30)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_correct_async_store_passes(backend: str) -> None:
    check_async_seq_store(
        ks.AsyncDictSeqStore, reopen=ks.reopen_async_dict, max_examples=20, backend=backend
    )


class TestDictSeqStoreContract(SeqStoreContract[ks.DictSeqStore]):
    max_examples = 20

    def make_store(self) -> ks.DictSeqStore:
        return ks.DictSeqStore()

    def reopen_store(self, store: ks.DictSeqStore) -> ks.DictSeqStore:
        return ks.reopen_dict(store)

    def test_fresh_path_is_new_each_time(self, tmp_path: Path) -> None:
        first, second = self.fresh_path(".json"), self.fresh_path(".json")
        assert first != second
        assert first.parent == second.parent == self.tmp_path == tmp_path
        assert first.suffix == ".json"
        assert not first.exists()


class TestFiveMethodContract(SeqStoreContract[ks.FiveMethodStore]):
    max_examples = 20

    def make_store(self) -> ks.FiveMethodStore:
        return ks.FiveMethodStore()


class TestAsyncDictSeqStoreContract(AsyncSeqStoreContract[ks.AsyncDictSeqStore]):
    max_examples = 10

    async def make_store(self) -> ks.AsyncDictSeqStore:
        return ks.AsyncDictSeqStore()

    async def reopen_store(self, store: ks.AsyncDictSeqStore) -> ks.AsyncDictSeqStore:
        return await ks.reopen_async_dict(store)


# -- the contract classes --------------------------------------------------------------


@pytest.mark.parametrize("contract", [SeqStoreContract, AsyncSeqStoreContract])
def test_each_group_is_a_named_test(contract: type[Any]) -> None:
    tests = sorted(name for name in dir(contract) if name.startswith("test_"))
    assert tests == sorted(f"test_{group.name}" for group in GROUPS)
    assert not contract.__name__.startswith("Test")  # pytest must not collect the base


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        ("test_admin", r"no set_next_out/set_next_in/snapshot \(not admin-capable\)"),
        ("test_exhaustion", r"not admin-capable"),
        ("test_creation_time", r"the store has no creation_time\(\)"),
        ("test_reopen", r"no reopen was given"),
    ],
)
def test_missing_capabilities_skip_with_a_reason(test: str, reason: str) -> None:
    suite = TestFiveMethodContract()
    with pytest.raises(pytest.skip.Exception, match=reason):
        getattr(suite, test)()


def test_contract_reports_a_broken_store() -> None:
    class Broken(SeqStoreContract[ks.MarkGoesDown]):
        def make_store(self) -> ks.MarkGoesDown:
            return ks.MarkGoesDown()

    with pytest.raises(AssertionError, match=r"\[basics\] MarkGoesDown: .*went down"):
        Broken().test_basics()


def test_async_contract_reports_a_broken_store() -> None:
    class Broken(AsyncSeqStoreContract[ks.AsyncRacyNextOut]):
        def make_store(self) -> ks.AsyncRacyNextOut:
            return ks.AsyncRacyNextOut()

    with pytest.raises(AssertionError, match=r"\[concurrency\] AsyncRacyNextOut: .*two callers"):
        Broken().test_concurrency(("trio", {}))


# -- the exported state machines, on their own --------------------------------------------


def _run_machine(machine: type[Any]) -> None:
    run_state_machine_as_test(machine, settings=kit_settings(200))


def _machine_for(store: type[ks.DictSeqStore], *, reopen: bool) -> type[SeqStoreMachine]:
    class Plain(SeqStoreMachine):
        def make_store(self) -> ks.DictSeqStore:
            return store()

    class Durable(Plain):
        def reopen_store(self, old: ks.DictSeqStore) -> ks.DictSeqStore:
            return ks.reopen_dict(old)

    return Durable if reopen else Plain


def test_machine_passes_a_correct_store() -> None:
    _run_machine(_machine_for(ks.DictSeqStore, reopen=True))
    _run_machine(_machine_for(ks.FiveMethodStore, reopen=False))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        (ks.MarkGoesDown, r"\[model\] MarkGoesDown: (current_in|snapshot)\(\) is"),
        (ks.PeekAdvances, r"\[model\] PeekAdvances: (peek_out\(\) (advanced|is)|next_out)"),
        (ks.InboundOffByOne, r"\[model\] InboundOffByOne: (current_in|snapshot)\(\) is"),
        (ks.ResetKeepsInbound, r"\[model\] ResetKeepsInbound: (current_in|snapshot)\(\) is"),
        (ks.SetNextOutIgnored, r"\[model\] SetNextOutIgnored: (peek_out|next_out|snapshot)\(\)"),
        (ks.AcceptsZero, r"\[model\] AcceptsZero: observed_in\(0\) was accepted"),
        (ks.ChangesThenRejects, r"\[model\] ChangesThenRejects: set_next_out\(.*\) was rejected "
         r"but changed the store"),
        (ks.NoLimit, r"\[model\] NoLimit: next_out\(\) after MAX_SEQ_NUM was handed out returned"),
        (ks.LosesLastChange, r"\[model\] LosesLastChange: after a reopen"),
    ],
)  # fmt: skip
def test_machine_catches_a_mutant(mutant: type[ks.DictSeqStore], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        _run_machine(_machine_for(mutant, reopen=True))


class _AsyncMachine(AsyncSeqStoreMachine):
    store: type[ks.AsyncDictSeqStore] = ks.AsyncDictSeqStore

    async def make_store(self) -> ks.AsyncDictSeqStore:
        return self.store()

    async def reopen_store(self, old: ks.AsyncDictSeqStore) -> ks.AsyncDictSeqStore:
        return await ks.reopen_async_dict(old)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_machine(backend: str) -> None:
    def machine(store: type[ks.AsyncDictSeqStore]) -> type[_AsyncMachine]:
        return type("Machine", (_AsyncMachine,), {"store": store, "backend": backend})

    run_state_machine_as_test(
        machine(ks.AsyncDictSeqStore),
        settings=kit_settings(10),
    )
    with pytest.raises(AssertionError, match=r"\[model\] AsyncLosesLastChange: after a reopen"):
        _run_machine(machine(ks.AsyncLosesLastChange))


# -- parameters ----------------------------------------------------------------------------


def test_parameters_are_validated() -> None:
    with pytest.raises(TypeError, match="make_store must be callable"):
        check_seq_store(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        check_seq_store(ks.DictSeqStore, threads=0)
    with pytest.raises(TypeError, match="max_examples must be an int"):
        check_seq_store(ks.DictSeqStore, max_examples=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tasks must be at least 1"):
        check_async_seq_store(ks.AsyncDictSeqStore, tasks=-1)
    with pytest.raises(ValueError, match="backend must be one of"):
        check_async_seq_store(ks.AsyncDictSeqStore, backend="curio")


def test_one_thread_and_one_example_still_check() -> None:
    check_seq_store(ks.DictSeqStore, reopen=ks.reopen_dict, threads=1, max_examples=1)
    with pytest.raises(AssertionError, match=r"\[basics\]"):
        check_seq_store(ks.PeekAdvances, threads=1, max_examples=1)


def test_importing_fixseq_does_not_import_the_kit(child_env: dict[str, str]) -> None:
    code = (
        "import sys, fixseq\n"
        "loaded = [m for m in ('fixseq.testing', 'hypothesis', 'pytest') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import fixseq.testing\n"
        "assert 'hypothesis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], env=child_env, check=True, timeout=60)
