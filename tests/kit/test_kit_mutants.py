"""The kit catches every broken store, with a message naming what broke.

One mutant per defect of issue 3 (and a few more), each run through the public
entry point; the message is matched, so a kit that failed for the wrong reason
(or at the wrong check) fails here too.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import kit_stores as ks
import pytest

from fixseq.testing import check_async_seq_store, check_seq_store

# (mutant, the message the kit must give: group, store and what broke)
SYNC_MUTANTS: list[tuple[type[ks.DictSeqStore], str]] = [
    # next_out repeating or skipping, late in a long run
    (ks.RepeatsLate, r"\[long_run\] RepeatsLate: call 700 of 1000 consecutive next_out\(\) "
     r"returned 699, expected 700: a number handed out again"),
    (ks.SkipsLate, r"\[long_run\] SkipsLate: call 600 of 1000 consecutive next_out\(\) "
     r"returned 601, expected 600: a skipped number"),
    # peek_out advancing or disagreeing
    (ks.PeekAdvances, r"\[basics\] PeekAdvances: peek_out\(\) advanced: two calls in a row "
     r"returned 1 then 2"),
    (ks.PeekDisagrees, r"\[basics\] PeekDisagrees: peek_out\(\) said 2 but the next next_out\(\) "
     r"returned 1: peek_out\(\) disagrees with next_out\(\)"),
    # the inbound mark going down, or off by one
    (ks.MarkGoesDown, r"\[basics\] MarkGoesDown: after observed_in\(3\) current_in\(\) is 4, "
     r"expected 6: the inbound high-water mark went down"),
    (ks.InboundOffByOne, r"\[basics\] InboundOffByOne: after observed_in\(1\) current_in\(\) "
     r"is 1, expected 2: off by one"),
    # reset leaving a counter anywhere but 1
    (ks.ResetKeepsInbound, r"\[basics\] ResetKeepsInbound: after reset\(\) \(a reset puts both "
     r"counters at 1\): current_in\(\) is 101, expected 1"),
    (ks.ResetToZero, r"\[basics\] ResetToZero: after reset\(\) \(a reset puts both counters "
     r"at 1\): peek_out\(\) is 0, expected 1"),
    # set_next_* not taking effect, snapshot disagreeing
    (ks.SetNextOutIgnored, r"\[admin\] SetNextOutIgnored: after set_next_out\(100\): "
     r"peek_out\(\) is 1, expected 100"),
    (ks.SetNextInIgnored, r"\[admin\] SetNextInIgnored: after set_next_in\(50\): "
     r"current_in\(\) is 1, expected 50"),
    (ks.StaleSnapshot, r"\[basics\] StaleSnapshot: after make_store\(\) and one next_out\(\): "
     r"snapshot\(\) is \(1, 1\), disagreeing with the single reads"),
    # invalid seq nums accepted, or a rejected call that changed the counters
    (ks.AcceptsZero, r"\[validation\] AcceptsZero: observed_in\(0\) was accepted; "
     r"it must raise ValueError"),
    (ks.AcceptsBool, r"\[validation\] AcceptsBool: observed_in\(True\) was accepted; "
     r"it must raise TypeError or ValueError"),
    (ks.AcceptsAboveMax, r"\[validation\] AcceptsAboveMax: observed_in\(MAX_SEQ_NUM \+ 1\) was "
     r"accepted; it must raise ValueError"),
    (ks.AcceptsFloat, r"\[validation\] AcceptsFloat: observed_in\(1\.0\) was accepted; "
     r"it must raise TypeError"),
    (ks.ChangesThenRejects, r"\[validation\] ChangesThenRejects: set_next_out\(0\) was rejected "
     r"but changed the store: before it peek_out\(\)=4, .* after it peek_out\(\)=0"),
    (ks.OverflowOnHuge, r"\[validation\] OverflowOnHuge: observed_in\(MAX_SEQ_NUM \+ 1\) raised "
     r"OverflowError\(int too large to convert\); the contract asks for ValueError"),
    # exhaustion
    (ks.NoLimit, r"\[exhaustion\] NoLimit: the first next_out\(\) after MAX_SEQ_NUM returned "
     r"MAX_SEQ_NUM \+ 1; once MAX_SEQ_NUM has been handed out, next_out\(\) must raise"),
    (ks.ExhaustedButAdvances, r"\[exhaustion\] ExhaustedButAdvances: after the first refused "
     r"next_out\(\): peek_out\(\) is MAX_SEQ_NUM \+ 2, expected MAX_SEQ_NUM \+ 1"),
    # creation time and result types
    (ks.NaiveCreationTime, r"\[basics\] NaiveCreationTime: creation_time\(\) returned a naive "
     r"datetime"),
    (ks.SetMovesCreationTime, r"\[creation_time\] SetMovesCreationTime: set_next_out\(9\) "
     r"changed creation_time\(\) from .* only reset\(\) may"),
    (ks.NotAnInt, r"\[basics\] NotAnInt: next_out\(\) returned '1' \(str\), not an int"),
    # races: the same number to two threads, lost updates to the inbound mark
    (ks.RacyNextOut, r"\[concurrency\] RacyNextOut: next_out\(\) from 8 threads at once: "
     r"a race in next_out\(\): the same number can go to two callers \("),
    (ks.RacyNextOutNoIO, r"\[concurrency\] RacyNextOutNoIO: next_out\(\) from 8 threads at "
     r"once: a race in next_out\(\): the same number can go to two callers \("),
    (ks.RacyObservedIn, r"\[concurrency\] RacyObservedIn: observed_in\(\) from 8 threads at "
     r"once: a lost update: the inbound high-water mark went down"),
    (ks.RacyObservedInNoIO, r"\[concurrency\] RacyObservedInNoIO: observed_in\(\) from 8 "
     r"threads at once: a lost update: the inbound high-water mark went down"),
    # an acknowledged change lost on reopen
    (ks.LosesLastChange, r"\[reopen\] LosesLastChange: after next_out\(\) returned 1 and an "
     r"immediate reopen: peek_out\(\) is 1, but 2 was acknowledged"),
    (ks.UncommittedReset, r"\[reopen\] UncommittedReset: after reset\(\) and an immediate "
     r"reopen: peek_out\(\) is MAX_SEQ_NUM \+ 1, but 1 was acknowledged"),
    (ks.RejectedWritesDisk, r"\[reopen\] RejectedWritesDisk: after a rejected observed_in\(0\) "
     r"and an immediate reopen: current_in\(\) is 0, but 12 was acknowledged"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutant", "message"), SYNC_MUTANTS, ids=[m.__name__ for m, _ in SYNC_MUTANTS]
)
def test_sync_mutant_is_caught(mutant: type[ks.DictSeqStore], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_seq_store(mutant, reopen=ks.reopen_dict, max_examples=10)


@pytest.mark.parametrize("mutant", [ks.RacyNextOutNoIO, ks.RacyObservedInNoIO])
def test_pure_python_race_is_caught_every_time(mutant: type[ks.DictSeqStore]) -> None:
    # A lock-free read-modify-write that never releases the GIL itself: the kit
    # must find it on every run, not when the scheduler happens to cooperate.
    for _ in range(5):
        with pytest.raises(AssertionError, match=r"\[concurrency\]"):
            check_seq_store(mutant, threads=4, max_examples=1)


ASYNC_MUTANTS: list[tuple[type[ks.AsyncDictSeqStore], str]] = [
    (ks.AsyncRacyNextOut, r"\[concurrency\] AsyncRacyNextOut: next_out\(\) from 50 tasks at "
     r"once: a race in next_out\(\): the same number can go to two callers \("),
    (ks.AsyncRacyObservedIn, r"\[concurrency\] AsyncRacyObservedIn: observed_in\(\) from 50 "
     r"tasks at once: a lost update: the inbound high-water mark went down"),
    (ks.AsyncPeekAdvances, r"\[basics\] AsyncPeekAdvances: peek_out\(\) advanced: two calls in "
     r"a row returned 1 then 2"),
    (ks.AsyncNotAwaitable, r"\[protocol\] AsyncNotAwaitable: peek_out\(\) returned 1, not an "
     r"awaitable"),
    (ks.AsyncLosesLastChange, r"\[reopen\] AsyncLosesLastChange: after next_out\(\) returned 1 "
     r"and an immediate reopen: peek_out\(\) is 1, but 2 was acknowledged"),
]  # fmt: skip


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    ("mutant", "message"), ASYNC_MUTANTS, ids=[m.__name__ for m, _ in ASYNC_MUTANTS]
)
def test_async_mutant_is_caught(
    mutant: type[ks.AsyncDictSeqStore], message: str, backend: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        check_async_seq_store(mutant, reopen=ks.reopen_async_dict, max_examples=10, backend=backend)


def test_a_store_error_where_none_is_allowed_is_a_violation() -> None:
    class Raises(ks.DictSeqStore):
        def current_in(self) -> int:
            raise KeyError("next_in")

    with pytest.raises(
        AssertionError, match=r"\[protocol\] Raises: current_in\(\) raised KeyError"
    ):
        check_seq_store(Raises)


def test_a_reopen_that_fails_is_a_violation() -> None:
    def reopen(store: Any) -> Any:
        raise FileNotFoundError("gone")

    with pytest.raises(
        AssertionError, match=r"\[reopen\] DictSeqStore: reopen raised FileNotFoundError: gone"
    ):
        check_seq_store(ks.DictSeqStore, reopen=reopen, max_examples=1)


def test_a_deadlocked_worker_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import fixseq.testing._concurrency as concurrency

    monkeypatch.setattr(concurrency, "_TIMEOUT", 0.5)
    release = threading.Event()

    class Hangs(ks.DictSeqStore):
        def next_out(self) -> int:
            if threading.current_thread() is not threading.main_thread():
                release.wait()  # the concurrency group's threads never get an answer
            return super().next_out()

    try:
        with pytest.raises(AssertionError, match=r"did not finish within 0.5 s: a deadlock\?"):
            check_seq_store(Hangs, threads=2, max_examples=1)
    finally:
        release.set()


def test_messages_name_the_group_first() -> None:
    with pytest.raises(AssertionError) as info:
        check_seq_store(ks.PeekAdvances)
    assert re.match(r"\[basics\] PeekAdvances: ", str(info.value))
