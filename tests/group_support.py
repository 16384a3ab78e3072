"""Helpers for group-commit tests: watch a Batcher's queue fill, without sleeping."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fixseq._group import Batcher


class WatchedQueue(list[Any]):
    """A Batcher's queue that lets a test wait until it holds some number of calls."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def append(self, item: Any) -> None:
        super().append(item)
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self) >= count, timeout=60), len(self)


def watch(batcher: Batcher[Any, Any]) -> WatchedQueue:
    """Replace ``batcher``'s (idle, empty) queue with a :class:`WatchedQueue`."""
    assert not batcher._queue and not batcher._busy
    queue = WatchedQueue()
    batcher._queue = queue
    return queue
