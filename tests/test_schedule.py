"""ResetSchedule: the rule behind ``fixseq reset --if-created-before``, over zones and instants."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixseq import ResetSchedule

UTC = datetime.timezone.utc
# Zones with DST at 02:00 (New York), 01:00 UTC (London), a 30-minute change (Lord Howe),
# changes at midnight (Santiago), the southern hemisphere (Sydney) and none at all (Tokyo).
ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Australia/Sydney",
    "Asia/Tokyo",
    "UTC",
]

schedules = st.builds(
    ResetSchedule,
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 1, 15, 29, 30, 31, 45, 59]),
    zone=st.sampled_from(ZONES).map(zoneinfo.ZoneInfo),
    weekday=st.none() | st.integers(0, 6),
)
instants = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1),
    max_value=datetime.datetime(2037, 12, 31),
    timezones=st.just(UTC),
)
# Instants near the DST changes, where the rule can go wrong.
near_changes = st.builds(
    lambda year, day, minute: (
        datetime.datetime(year, 1, 1, tzinfo=UTC) + datetime.timedelta(days=day, minutes=minute)
    ),
    st.integers(2020, 2030),
    st.sampled_from([66, 67, 68, 86, 87, 88, 89, 90, 95, 96, 272, 273, 276, 297, 298, 303, 304]),
    st.integers(0, 24 * 60 * 2),
)
any_instant = instants | near_changes


def at(
    zone: str, year: int, month: int, day: int, hour: int, minute: int, fold: int = 0
) -> datetime.datetime:
    local = datetime.datetime(year, month, day, hour, minute, tzinfo=zoneinfo.ZoneInfo(zone))
    return local.replace(fold=fold).astimezone(UTC)


# -- parsing -------------------------------------------------------------------------


def test_parse_daily_and_weekly_forms() -> None:
    daily = ResetSchedule.parse("17:00 America/New_York")
    assert (daily.hour, daily.minute, daily.zone.key, daily.weekday) == (
        17,
        0,
        "America/New_York",
        None,
    )
    weekly = ResetSchedule.parse("sun 7:05 UTC")
    assert (weekly.hour, weekly.minute, weekly.weekday) == (7, 5, 6)
    assert str(weekly) == "Sun 07:05 UTC"
    assert ResetSchedule.parse(str(weekly)) == weekly


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("17:00", "HH:MM ZONE"),
        ("", "HH:MM ZONE"),
        ("24:00 UTC", "24:00"),
        ("12:60 UTC", "12:60"),
        ("Sunday 17:00 UTC", "HH:MM ZONE"),
        ("Sux 17:00 UTC", "'Sux'"),
        ("17:00 Mars/Olympus", "Mars/Olympus"),
        ("17:00 ../etc/passwd", "../etc/passwd"),
    ],
)
def test_parse_refuses_with_the_part_that_is_wrong(text: str, names: str) -> None:
    with pytest.raises(ValueError, match="bad schedule") as info:
        ResetSchedule.parse(text)
    assert names in str(info.value)


def test_bad_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        ResetSchedule.parse(17)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ResetSchedule(17, 0, "UTC")  # type: ignore[arg-type]
    schedule = ResetSchedule.parse("17:00 UTC")
    with pytest.raises(TypeError, match="aware"):
        schedule.is_due(datetime.datetime(2026, 1, 1), datetime.datetime.now(UTC))
    with pytest.raises(ValueError, match="weekday"):
        ResetSchedule(17, 0, zoneinfo.ZoneInfo("UTC"), 7)


# -- DST edges, by example, in four zones ------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "day", "expected"),
    [
        # New York, 2026-03-08: 02:00 EST becomes 03:00 EDT; 02:30 is skipped.
        ("02:30 America/New_York", (2026, 3, 8), at("America/New_York", 2026, 3, 8, 3, 0)),
        ("02:00 America/New_York", (2026, 3, 8), at("America/New_York", 2026, 3, 8, 3, 0)),
        ("03:00 America/New_York", (2026, 3, 8), at("America/New_York", 2026, 3, 8, 3, 0)),
        # New York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
        ("01:30 America/New_York", (2026, 11, 1), at("America/New_York", 2026, 11, 1, 1, 30)),
        # London, 2026-03-29: 01:00 GMT becomes 02:00 BST.
        ("01:30 Europe/London", (2026, 3, 29), datetime.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # London, 2026-10-25: 02:00 BST becomes 01:00 GMT; first 01:30 is 00:30 UTC.
        ("01:30 Europe/London", (2026, 10, 25), datetime.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # Lord Howe, 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11), a half-hour gap.
        (
            "02:15 Australia/Lord_Howe",
            (2026, 10, 4),
            datetime.datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
        ),
        # Lord Howe, 2026-04-05: 02:00 (+11) becomes 01:30 (+10:30); 01:45 twice.
        (
            "01:45 Australia/Lord_Howe",
            (2026, 4, 5),
            datetime.datetime(2026, 4, 4, 14, 45, tzinfo=UTC),
        ),
        # Santiago, 2026-09-06: midnight (-04) becomes 01:00 (-03); 00:30 is skipped.
        (
            "00:30 America/Santiago",
            (2026, 9, 6),
            datetime.datetime(2026, 9, 6, 4, 0, tzinfo=UTC),
        ),
    ],
)
def test_dst_edges(schedule: str, day: tuple[int, int, int], expected: datetime.datetime) -> None:
    parsed = ResetSchedule.parse(schedule)
    assert parsed.instant_on(datetime.date(*day)) == expected


def test_the_second_occurrence_of_a_repeated_time_is_not_a_new_instant() -> None:
    schedule = ResetSchedule.parse("01:30 America/New_York")
    first = at("America/New_York", 2026, 11, 1, 1, 30, fold=0)
    second = at("America/New_York", 2026, 11, 1, 1, 30, fold=1)
    assert second - first == datetime.timedelta(hours=1)
    assert schedule.is_due(first - datetime.timedelta(seconds=1), first)
    # Reset at the first 01:30: the repeated hour does not make it due again.
    assert not schedule.is_due(first, second)
    assert not schedule.is_due(first, second + datetime.timedelta(minutes=1))


def test_weekly_schedule_fires_on_its_day_only() -> None:
    schedule = ResetSchedule.parse("Sun 17:00 America/New_York")
    friday = at("America/New_York", 2026, 12, 4, 18, 0)
    last_sunday = at("America/New_York", 2026, 11, 29, 17, 0)
    assert schedule.last_instant(friday) == last_sunday
    assert schedule.next_instant(friday) == at("America/New_York", 2026, 12, 6, 17, 0)
    assert not schedule.is_due(last_sunday, friday)
    assert schedule.is_due(last_sunday - datetime.timedelta(microseconds=1), friday)


# -- properties over zones and instants --------------------------------------------------


@given(schedules, any_instant)
def test_last_and_next_bracket_now_with_nothing_between(
    schedule: ResetSchedule, now: datetime.datetime
) -> None:
    last = schedule.last_instant(now)
    following = schedule.next_instant(now)
    assert last <= now < following
    assert schedule.next_instant(last) == following
    assert schedule.last_instant(following) == following
    assert following - last <= datetime.timedelta(days=7, hours=3)
    if schedule.weekday is not None:
        # On its weekday, unless a gap at midnight moved it to the end of the gap.
        assert last.astimezone(schedule.zone).weekday() == schedule.weekday or _ends_a_gap(
            schedule, last
        )


def _ends_a_gap(schedule: ResetSchedule, instant: datetime.datetime) -> bool:
    before = (instant - datetime.timedelta(seconds=1)).astimezone(schedule.zone)
    return before.utcoffset() != instant.astimezone(schedule.zone).utcoffset()


@given(schedules, any_instant)
def test_instants_strictly_increase_and_keep_their_wall_time(
    schedule: ResetSchedule, when: datetime.datetime
) -> None:
    day = when.date()
    first, second = schedule.instant_on(day), schedule.instant_on(day + datetime.timedelta(1))
    assert first < second
    local = first.astimezone(schedule.zone).replace(tzinfo=None)
    wall = datetime.datetime.combine(day, datetime.time(schedule.hour, schedule.minute))
    if local == wall:
        # An existing wall time: its first occurrence.
        assert first == wall.replace(tzinfo=schedule.zone, fold=0).astimezone(UTC)
    else:
        # Only a skipped wall time moves, forwards, to the end of its gap.
        assert wall.replace(tzinfo=schedule.zone).astimezone(UTC) != wall.replace(
            tzinfo=schedule.zone, fold=1
        ).astimezone(UTC)
        assert wall < local <= wall + datetime.timedelta(hours=2)
        assert _ends_a_gap(schedule, first)


@given(schedules, any_instant, st.integers(0, 10 * 24 * 3600))
def test_idempotent_after_a_reset_until_the_next_instant(
    schedule: ResetSchedule, reset_at: datetime.datetime, later_seconds: int
) -> None:
    later = reset_at + datetime.timedelta(seconds=later_seconds)
    # A reset at reset_at sets created = reset_at.
    due = schedule.is_due(reset_at, later)
    assert due == (later >= schedule.next_instant(reset_at))


@given(schedules, any_instant, any_instant, st.integers(0, 7 * 24 * 3600))
def test_never_twice_for_one_instant(
    schedule: ResetSchedule,
    created: datetime.datetime,
    first_run: datetime.datetime,
    gap_seconds: int,
) -> None:
    # Two runs (cron on two hosts, or one run repeated): whatever the first did, the
    # second, at or after it and before the next instant, never resets again.
    second_run = first_run + datetime.timedelta(seconds=gap_seconds)
    if schedule.last_instant(second_run) != schedule.last_instant(first_run):
        return
    state = created
    resets = 0
    for now in (first_run, second_run):
        if schedule.is_due(state, now):
            state, resets = now, resets + 1
    assert resets <= 1
    assert resets == int(created < schedule.last_instant(first_run))
