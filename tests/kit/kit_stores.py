"""Stores for the kit's own tests: correct ones (duck-typed, no fixseq base class)
and mutants, each broken in exactly one way the kit must report.

The "disk" of a durable store here is a dict shared between the store and the
store reopened on it; a mutant that loses a change on reopen loses it there.
"""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel

MAX = 2**63 - 1  # the contract's MAX_SEQ_NUM, spelled out: a third party need not import it


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _valid(seq_num: object) -> int:
    if isinstance(seq_num, bool) or not isinstance(seq_num, int):
        raise TypeError(f"seq_num must be an int, not {type(seq_num).__name__}")
    if not 1 <= seq_num <= MAX:
        raise ValueError(f"seq_num must be in 1..{MAX}, got {seq_num}")
    return seq_num


class FiveMethodStore:
    """Correct, and only the five protocol methods: no admin, no creation_time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._out = 1
        self._in = 1

    def next_out(self) -> int:
        with self._lock:
            if self._out > MAX:
                raise OverflowError("exhausted")
            self._out += 1
            return self._out - 1

    def peek_out(self) -> int:
        with self._lock:
            return self._out

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._in = max(self._in, seq_num + 1)

    def current_in(self) -> int:
        with self._lock:
            return self._in

    def reset(self) -> None:
        with self._lock:
            self._out = self._in = 1


class DictSeqStore:
    """Correct and admin-capable, with a dict for a disk: every change is
    written to ``disk`` before it is acknowledged, and a store opened on the
    same dict carries on from it."""

    def __init__(self, disk: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self.disk: dict[str, Any] = {} if disk is None else disk
        if not self.disk:
            self.disk.update(next_out=1, next_in=1, created=_now())
        self._out: int = self.disk["next_out"]
        self._in: int = self.disk["next_in"]
        self._created: datetime.datetime = self.disk["created"]
        self.closed = False

    def _write(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        self.disk.update(next_out=next_out, next_in=next_in, created=created)
        self._out, self._in, self._created = next_out, next_in, created

    def next_out(self) -> int:
        with self._lock:
            if self._out > MAX:
                raise OverflowError("next_out would pass MAX_SEQ_NUM")
            number = self._out
            self._write(number + 1, self._in, self._created)
            return number

    def peek_out(self) -> int:
        with self._lock:
            return self._out

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            if seq_num >= self._in:
                self._write(self._out, seq_num + 1, self._created)

    def current_in(self) -> int:
        with self._lock:
            return self._in

    def reset(self) -> None:
        with self._lock:
            self._write(1, 1, _now())

    def set_next_out(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._write(seq_num, self._in, self._created)

    def set_next_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._write(self._out, seq_num, self._created)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self._out, self._in

    def creation_time(self) -> datetime.datetime:
        with self._lock:
            return self._created

    def close(self) -> None:
        self.closed = True


def reopen_dict(store: DictSeqStore) -> DictSeqStore:
    """Close ``store`` and open the same type again on its disk."""
    store.close()
    return type(store)(store.disk)


# -- mutants: one defect each ------------------------------------------------------


class RepeatsLate(DictSeqStore):
    """Hands out 699 twice: the 700th next_out() repeats the 699th."""

    def next_out(self) -> int:
        with self._lock:
            number = self._out
            if number != 700 or self.disk.get("repeated"):
                self._write(number + 1, self._in, self._created)
                return number
            self.disk["repeated"] = True
            return number - 1


class SkipsLate(DictSeqStore):
    """Skips 600."""

    def next_out(self) -> int:
        with self._lock:
            number = self._out + (1 if self._out == 600 else 0)
            self._write(number + 1, self._in, self._created)
            return number


class PeekAdvances(DictSeqStore):
    """peek_out() takes the number, as next_out() does."""

    def peek_out(self) -> int:
        with self._lock:
            number = self._out
            self._write(number + 1, self._in, self._created)
            return number


class PeekDisagrees(DictSeqStore):
    """peek_out() is one ahead of what next_out() returns."""

    def peek_out(self) -> int:
        return super().peek_out() + 1


class MarkGoesDown(DictSeqStore):
    """observed_in(n) sets the mark to n + 1 even below the mark."""

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._write(self._out, seq_num + 1, self._created)


class InboundOffByOne(DictSeqStore):
    """observed_in(n) makes the mark n, not n + 1."""

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        with self._lock:
            self._write(self._out, max(self._in, seq_num), self._created)


class ResetKeepsInbound(DictSeqStore):
    """reset() puts only the outbound counter back to 1."""

    def reset(self) -> None:
        with self._lock:
            self._write(1, self._in, _now())


class ResetToZero(DictSeqStore):
    """reset() puts the outbound counter at 0."""

    def reset(self) -> None:
        with self._lock:
            self._write(0, 1, _now())


class SetNextOutIgnored(DictSeqStore):
    """set_next_out() validates and does nothing."""

    def set_next_out(self, seq_num: int) -> None:
        _valid(seq_num)


class SetNextInIgnored(DictSeqStore):
    """set_next_in() validates and does nothing."""

    def set_next_in(self, seq_num: int) -> None:
        _valid(seq_num)


class StaleSnapshot(DictSeqStore):
    """snapshot() returns what the last set_next_* left, not the live counters."""

    _snap = (1, 1)

    def set_next_out(self, seq_num: int) -> None:
        super().set_next_out(seq_num)
        self._snap = (self._out, self._in)

    def set_next_in(self, seq_num: int) -> None:
        super().set_next_in(seq_num)
        self._snap = (self._out, self._in)

    def snapshot(self) -> tuple[int, int]:
        return self._snap


class AcceptsZero(DictSeqStore):
    """observed_in(0) is accepted (a 0-based range check)."""

    def observed_in(self, seq_num: int) -> None:
        if seq_num == 0:
            return
        super().observed_in(seq_num)


class AcceptsBool(DictSeqStore):
    """observed_in(True) is taken as 1."""

    def observed_in(self, seq_num: int) -> None:
        super().observed_in(int(seq_num))


class AcceptsAboveMax(DictSeqStore):
    """No upper bound on observed_in()."""

    def observed_in(self, seq_num: int) -> None:
        if type(seq_num) is int and seq_num > MAX:
            with self._lock:
                self._write(self._out, max(self._in, seq_num + 1), self._created)
            return
        super().observed_in(seq_num)


class AcceptsFloat(DictSeqStore):
    """observed_in(2.0) is taken as 2 (an int() conversion)."""

    def observed_in(self, seq_num: object) -> None:
        if isinstance(seq_num, float) and seq_num.is_integer():
            seq_num = int(seq_num)
        super().observed_in(seq_num)  # type: ignore[arg-type]


class ChangesThenRejects(DictSeqStore):
    """set_next_out() stores the value, then validates it."""

    def set_next_out(self, seq_num: int) -> None:
        with self._lock:
            self._out = seq_num
        _valid(seq_num)
        super().set_next_out(seq_num)


class OverflowOnHuge(DictSeqStore):
    """observed_in() above 2**63 - 1 raises OverflowError (a struct.pack of a big int)."""

    def observed_in(self, seq_num: int) -> None:
        if type(seq_num) is int and seq_num > MAX:
            raise OverflowError("int too large to convert")
        super().observed_in(seq_num)


class NoLimit(DictSeqStore):
    """next_out() carries on past MAX_SEQ_NUM."""

    def next_out(self) -> int:
        with self._lock:
            number = self._out
            self._write(number + 1, self._in, self._created)
            return number


class ExhaustedButAdvances(DictSeqStore):
    """Refuses past MAX_SEQ_NUM, but only after advancing the counter."""

    def next_out(self) -> int:
        with self._lock:
            number = self._out
            self._write(number + 1, self._in, self._created)
            if number > MAX:
                raise OverflowError("exhausted")
            return number


class NaiveCreationTime(DictSeqStore):
    """creation_time() is naive."""

    def creation_time(self) -> datetime.datetime:
        return super().creation_time().replace(tzinfo=None)


class SetMovesCreationTime(DictSeqStore):
    """set_next_out() moves the creation time to now."""

    def set_next_out(self, seq_num: int) -> None:
        super().set_next_out(seq_num)
        with self._lock:
            self._write(self._out, self._in, _now())


class NotAnInt(DictSeqStore):
    """next_out() returns a str."""

    def next_out(self) -> Any:
        return str(super().next_out())


class RacyNextOut(DictSeqStore):
    """next_out() reads, does I/O (which releases the GIL), writes: no lock held."""

    def next_out(self) -> int:
        number: int = self.disk["next_out"]
        if number > MAX:
            raise OverflowError("exhausted")
        time.sleep(0)  # a round trip to a backend
        self.disk["next_out"] = self._out = number + 1
        return number


class RacyObservedIn(DictSeqStore):
    """observed_in() reads the mark, does I/O, writes the max: no lock held."""

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        mark = self.disk["next_in"]
        time.sleep(0)  # a round trip to a backend
        self.disk["next_in"] = self._in = max(mark, seq_num + 1)


class RacyNextOutNoIO(DictSeqStore):
    """next_out() as a read-modify-write in pure Python without a lock: under the
    GIL it is rarely interrupted, so only a kit that preempts inside it sees the race."""

    def _load(self) -> int:
        number: int = self.disk["next_out"]
        return number

    def next_out(self) -> int:
        number = self._load()
        if number > MAX:
            raise OverflowError("exhausted")
        self.disk["next_out"] = self._out = number + 1
        return number


class RacyObservedInNoIO(DictSeqStore):
    """observed_in() as a read-modify-write in pure Python without a lock."""

    def _load(self) -> int:
        mark: int = self.disk["next_in"]
        return mark

    def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        mark = self._load()
        self.disk["next_in"] = self._in = max(mark, seq_num + 1)


class LosesLastChange(DictSeqStore):
    """Writes each change to disk one change late: a reopen loses the last one."""

    _pending: dict[str, Any] | None = None

    def _write(self, next_out: int, next_in: int, created: datetime.datetime) -> None:
        if self._pending is not None:
            self.disk.update(self._pending)
        self._pending = dict(next_out=next_out, next_in=next_in, created=created)
        self._out, self._in, self._created = next_out, next_in, created


class UncommittedReset(DictSeqStore):
    """reset() changes the counters in memory only (an uncommitted transaction)."""

    def reset(self) -> None:
        with self._lock:
            self._out, self._in, self._created = 1, 1, _now()


class RejectedWritesDisk(DictSeqStore):
    """A rejected observed_in() has already written its number to disk."""

    def observed_in(self, seq_num: int) -> None:
        if type(seq_num) is int and seq_num < 1:
            self.disk["next_in"] = seq_num
        super().observed_in(seq_num)


# -- async --------------------------------------------------------------------------


class AsyncDictSeqStore:
    """Correct async store: each change awaits a (simulated) backend round trip
    under an anyio lock, so concurrent tasks interleave around it."""

    def __init__(self, disk: dict[str, Any] | None = None) -> None:
        self.sync = DictSeqStore(disk)
        self._lock = anyio.Lock()

    async def _io(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def next_out(self) -> int:
        async with self._lock:
            await self._io()
            return self.sync.next_out()

    async def peek_out(self) -> int:
        return self.sync.peek_out()

    async def observed_in(self, seq_num: int) -> None:
        async with self._lock:
            await self._io()
            self.sync.observed_in(seq_num)

    async def current_in(self) -> int:
        return self.sync.current_in()

    async def reset(self) -> None:
        async with self._lock:
            await self._io()
            self.sync.reset()

    async def set_next_out(self, seq_num: int) -> None:
        async with self._lock:
            self.sync.set_next_out(seq_num)

    async def set_next_in(self, seq_num: int) -> None:
        async with self._lock:
            self.sync.set_next_in(seq_num)

    async def snapshot(self) -> tuple[int, int]:
        return self.sync.snapshot()

    async def creation_time(self) -> datetime.datetime:
        return self.sync.creation_time()

    async def aclose(self) -> None:
        self.sync.close()


async def reopen_async_dict(store: AsyncDictSeqStore) -> AsyncDictSeqStore:
    """Close ``store`` and open the same type again on its disk."""
    await store.aclose()
    return type(store)(store.sync.disk)


class AsyncRacyNextOut(AsyncDictSeqStore):
    """next_out() reads, awaits the backend, writes: no lock held."""

    async def next_out(self) -> int:
        store = self.sync
        number: int = store.disk["next_out"]
        if number > MAX:
            raise OverflowError("exhausted")
        await self._io()
        store._write(number + 1, store._in, store._created)
        return number


class AsyncRacyObservedIn(AsyncDictSeqStore):
    """observed_in() reads the mark, awaits the backend, writes the max: no lock held."""

    async def observed_in(self, seq_num: int) -> None:
        seq_num = _valid(seq_num)
        store = self.sync
        mark: int = store.disk["next_in"]
        await self._io()
        store._write(store._out, max(mark, seq_num + 1), store._created)


class AsyncPeekAdvances(AsyncDictSeqStore):
    """peek_out() takes the number."""

    async def peek_out(self) -> int:
        return self.sync.next_out()


class AsyncNotAwaitable(AsyncDictSeqStore):
    """peek_out() is a plain method: it returns an int, not an awaitable."""

    def peek_out(self) -> Any:
        return self.sync.peek_out()


class AsyncLosesLastChange(AsyncDictSeqStore):
    """A reopen loses the last change (its sync core writes one change late)."""

    def __init__(self, disk: dict[str, Any] | None = None) -> None:
        self.sync = LosesLastChange(disk)
        self._lock = anyio.Lock()
