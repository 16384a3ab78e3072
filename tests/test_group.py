"""The leader/follower Batcher under the shared stores' group commit."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest
from group_support import watch

from fixseq._group import Batcher

if TYPE_CHECKING:
    from collections.abc import Sequence


def test_a_lone_call_runs_at_once_in_the_callers_thread() -> None:
    seen: list[tuple[list[int], threading.Thread]] = []

    def run(items: Sequence[int]) -> list[int | BaseException]:
        seen.append((list(items), threading.current_thread()))
        return [item * 2 for item in items]

    batcher: Batcher[int, int] = Batcher(run)
    assert batcher.submit(21) == 42
    assert seen == [([21], threading.current_thread())]
    assert batcher.batches == 1


class Gated:
    """A batcher whose first batch holds until released; a batch with -1 fails as a whole."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[int]] = []
        self.batcher: Batcher[int, int] = Batcher(self.run)
        self.queue = watch(self.batcher)

    def run(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(timeout=60)
        if -1 in items:
            raise OSError("the commit failed")
        return [ValueError(item) if item == 13 else item * 2 for item in items]

    def start(self, items: list[int]) -> tuple[list[threading.Thread], dict[int, object]]:
        outcomes: dict[int, object] = {}

        def call(item: int) -> None:
            try:
                outcomes[item] = self.batcher.submit(item)
            except BaseException as exc:
                outcomes[item] = exc

        threads = [threading.Thread(target=call, args=(item,)) for item in items]
        for thread in threads:
            thread.start()
        return threads, outcomes

    def run_group(self, items: list[int]) -> tuple[dict[int, object], dict[int, object]]:
        """One leader call held in its batch while ``items`` queue; then let all run."""
        first, first_outcome = self.start([100])
        assert self.entered.wait(timeout=60)
        rest, outcomes = self.start(items)
        self.queue.wait_for(len(items))
        self.release.set()
        for thread in first + rest:
            thread.join(timeout=60)
        return first_outcome, outcomes


def test_calls_queued_behind_a_running_batch_run_together_each_with_its_own_outcome() -> None:
    gated = Gated()
    first, outcomes = gated.run_group(list(range(1, 16)))
    assert gated.batches == [[100], list(range(1, 16))]
    assert first == {100: 200}
    assert isinstance(outcomes.pop(13), ValueError)  # only its own item failed
    assert outcomes == {item: item * 2 for item in range(1, 16) if item != 13}
    assert gated.batcher.batches == 2
    assert not gated.batcher._busy


def test_a_batch_that_fails_as_a_whole_fails_every_call_in_it_and_only_those() -> None:
    gated = Gated()
    first, outcomes = gated.run_group([1, -1, 2])
    assert first == {100: 200}
    assert set(outcomes) == {1, -1, 2}
    assert all(isinstance(outcome, OSError) for outcome in outcomes.values())
    assert gated.batcher.submit(3) == 6  # and the next call runs normally


def test_a_batch_that_raises_leaves_the_batcher_idle() -> None:
    def run(items: Sequence[int]) -> list[int | BaseException]:
        raise ZeroDivisionError

    batcher: Batcher[int, int] = Batcher(run)
    with pytest.raises(ZeroDivisionError):
        batcher.submit(1)
    assert not batcher._busy and not batcher._queue
