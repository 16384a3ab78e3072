"""Scheduled resets that are safe to run twice: the pure rule behind ``--if-created-before``.

A schedule is a wall time in an IANA zone, every day (``"17:00 America/New_York"``)
or on one weekday (``"Sun 17:00 America/New_York"``). A store is due for a
reset exactly when its creation time is before the most recent scheduled
instant at or before now. A reset sets the creation time to now, which is after
that instant, so the store is not due again until the next one: running the
check twice, from cron on both hosts of a pair, resets once.

Wall times a DST change skips or repeats (documented in docs/operations.md):

* skipped (``02:30`` on the night clocks go from 02:00 to 03:00): the instant
  is the first one after the gap, the transition itself (03:00 new time);
* repeated (``01:30`` on the night clocks go from 02:00 back to 01:00): the
  instant is the first occurrence (``fold=0``, the old offset).

Either way there is exactly one instant per scheduled day, and the instants
strictly increase, so no day is reset twice and none is left out.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import zoneinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._protocols import AdminSeqStore

__all__ = ["ResetSchedule", "reset_if_due"]

_UTC = datetime.timezone.utc
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FORM = re.compile(r"\s*(?:([A-Za-z]{3})\s+)?([0-9]{1,2}):([0-9]{2})\s+(\S+)\s*")


def _utc_seconds(local: datetime.datetime) -> int:
    """The POSIX time of an aware wall time (whole seconds: schedules are whole minutes)."""
    return int(local.timestamp())


@dataclasses.dataclass(frozen=True)
class ResetSchedule:
    """A daily or weekly reset time in an IANA time zone, and the rule that applies it.

    Build one with [`parse`][fixseq.ResetSchedule.parse] or directly. Pure: no
    clock is read; every method takes ``now``.

    Attributes:
        hour: The wall-clock hour, 0..23.
        minute: The wall-clock minute, 0..59.
        zone: The IANA zone the wall time is read in.
        weekday: ``None`` for every day, else 0 (Monday) .. 6 (Sunday).

    Raises:
        TypeError: A field has the wrong type.
        ValueError: ``hour``, ``minute`` or ``weekday`` is out of range.
    """

    hour: int
    minute: int
    zone: zoneinfo.ZoneInfo
    weekday: int | None = None

    def __post_init__(self) -> None:
        for name in ("hour", "minute"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if not 0 <= self.hour <= 23 or not 0 <= self.minute <= 59:
            raise ValueError(f"no such wall time {self.hour:02d}:{self.minute:02d}")
        if not isinstance(self.zone, zoneinfo.ZoneInfo):
            raise TypeError(f"zone must be a zoneinfo.ZoneInfo, not {type(self.zone).__name__}")
        if self.weekday is not None and (
            not isinstance(self.weekday, int)
            or isinstance(self.weekday, bool)
            or not 0 <= self.weekday <= 6
        ):
            raise ValueError(f"weekday must be None or 0 (Monday) .. 6 (Sunday): {self.weekday!r}")

    @classmethod
    def parse(cls, text: str) -> ResetSchedule:
        """Parse ``'HH:MM ZONE'`` or ``'DDD HH:MM ZONE'`` (``DDD``: Mon..Sun, any case).

        Args:
            text: For example ``"17:00 America/New_York"`` or ``"Sun 17:00 UTC"``.

        Returns:
            The schedule.

        Raises:
            TypeError: ``text`` is not a ``str``.
            ValueError: The text has neither form, or names no known zone
                (the message says which part is wrong).
        """
        if not isinstance(text, str):
            raise TypeError(f"a schedule must be a str, not {type(text).__name__}")
        match = _FORM.fullmatch(text)
        if match is None:
            raise ValueError(
                f"bad schedule {text!r}: write 'HH:MM ZONE' or 'Sun HH:MM ZONE', "
                "e.g. '17:00 America/New_York'"
            )
        day, hour, minute, zone_name = match.groups()
        weekday = None
        if day is not None:
            if day.lower() not in _WEEKDAYS:
                raise ValueError(f"bad schedule {text!r}: {day!r} is not Mon, Tue, ... or Sun")
            weekday = _WEEKDAYS.index(day.lower())
        try:
            zone = zoneinfo.ZoneInfo(zone_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"bad schedule {text!r}: no time zone {zone_name!r} (an IANA name such as "
                "Europe/London; install the tzdata package where the system has none)"
            ) from None
        try:
            return cls(int(hour), int(minute), zone, weekday)
        except ValueError as exc:
            raise ValueError(f"bad schedule {text!r}: {exc}") from None

    def __str__(self) -> str:
        day = "" if self.weekday is None else _WEEKDAYS[self.weekday].title() + " "
        return f"{day}{self.hour:02d}:{self.minute:02d} {self.zone.key}"

    # -- the rule ------------------------------------------------------------------

    def instant_on(self, day: datetime.date) -> datetime.datetime:
        """The scheduled instant of one local date (whether or not it is a scheduled weekday).

        A wall time skipped by a DST change gives the first instant after the
        gap; a repeated one gives its first occurrence.

        Returns:
            An aware UTC ``datetime``.
        """
        naive = datetime.datetime.combine(day, datetime.time(self.hour, self.minute))
        first = _utc_seconds(naive.replace(tzinfo=self.zone, fold=0))
        second = _utc_seconds(naive.replace(tzinfo=self.zone, fold=1))
        if first <= second:  # one instant, or a repeated wall time (fold=0 comes first)
            return datetime.datetime.fromtimestamp(first, _UTC)
        # A skipped wall time: fold=0 reads it with the offset before the change and
        # lands after the gap, fold=1 with the offset after and lands before it. The
        # change itself lies in between, on a whole second: find it.
        before, after = second, first
        new_offset = self._offset(after)  # before the change at ``before``, after it at ``after``
        while after - before > 1:
            middle = (before + after) // 2
            if self._offset(middle) == new_offset:
                after = middle
            else:
                before = middle
        # ``after`` is now the first second with the new offset: the end of the gap.
        return datetime.datetime.fromtimestamp(after, _UTC)

    def _offset(self, seconds: int) -> datetime.timedelta | None:
        return datetime.datetime.fromtimestamp(seconds, self.zone).utcoffset()

    def _scheduled(self, day: datetime.date) -> bool:
        return self.weekday is None or day.weekday() == self.weekday

    def last_instant(self, now: datetime.datetime) -> datetime.datetime:
        """The most recent scheduled instant at or before ``now``.

        Args:
            now: An aware ``datetime``.

        Returns:
            An aware UTC ``datetime`` ``<= now``.

        Raises:
            TypeError: ``now`` is not an aware ``datetime``.
        """
        now = _aware(now, "now")
        # Local date of now, plus one (a gap at midnight can move a day's instant past
        # its own date), then back a day at a time: at most 9 dates for a weekly schedule.
        day = now.astimezone(self.zone).date() + datetime.timedelta(days=1)
        for _ in range(10):
            if self._scheduled(day):
                instant = self.instant_on(day)
                if instant <= now:
                    return instant
            day -= datetime.timedelta(days=1)
        raise AssertionError("unreachable: a scheduled day within 10 days")  # pragma: no cover

    def next_instant(self, now: datetime.datetime) -> datetime.datetime:
        """The first scheduled instant strictly after ``now``.

        Raises:
            TypeError: ``now`` is not an aware ``datetime``.
        """
        now = _aware(now, "now")
        day = now.astimezone(self.zone).date() - datetime.timedelta(days=1)
        for _ in range(10):
            if self._scheduled(day):
                instant = self.instant_on(day)
                if instant > now:
                    return instant
            day += datetime.timedelta(days=1)
        raise AssertionError("unreachable: a scheduled day within 10 days")  # pragma: no cover

    def is_due(self, created: datetime.datetime, now: datetime.datetime) -> bool:
        """Whether a store created (or last reset) at ``created`` must be reset at ``now``.

        True exactly when ``created`` is before
        [`last_instant(now)`][fixseq.ResetSchedule.last_instant]. After a reset at
        ``t`` (``created = t``) it stays False until the next instant after ``t``.

        Args:
            created: The store's creation time (``creation_time()``), aware.
            now: The current time, aware.

        Raises:
            TypeError: Either is not an aware ``datetime``.
        """
        created = _aware(created, "created")
        return created < self.last_instant(now)


def _aware(value: object, name: str) -> datetime.datetime:
    if not isinstance(value, datetime.datetime) or value.utcoffset() is None:
        raise TypeError(f"{name} must be an aware datetime, not {value!r}")
    return value


def reset_if_due(
    store: AdminSeqStore,
    schedule: ResetSchedule | None,
    now: datetime.datetime | None = None,
) -> bool:
    """Reset ``store`` if ``schedule`` says it is due (the engine integrations, on opening).

    On an open file store (which holds its lock) the check and the reset are
    one step; on SQLite and PostgreSQL they are two, so for a pair of hosts
    sharing a database run ``fixseq reset --if-created-before`` from cron
    instead, which decides again inside the transaction.

    Returns:
        True if the store was reset.
    """
    if schedule is None:
        return False
    if not schedule.is_due(store.creation_time(), now or datetime.datetime.now(_UTC)):
        return False
    store.reset()
    return True
