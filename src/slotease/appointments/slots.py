"""The slot engine: pure functions from a service's schedule and its occupied places to the
slots offered for booking. No I/O, so it can be tested exhaustively.

Time rules:
- Working hours are wall-clock times in the organization's IANA zone. A slot starts on the
  wall-clock grid `interval start + k * slot_interval` and lasts `duration` of real time; it
  is offered only if it ends by the interval's end.
- A wall-clock start that does not exist (the hour skipped when clocks spring forward) is not
  offered. A wall-clock start that happens twice (clocks falling back) is offered once, at its
  first occurrence (`fold=0`).
- A place is occupied over [starts_at, ends_at + buffer); the database's capacity trigger
  counts the same way, so a slot offered with `remaining > 0` is one the database accepts.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from slotease.kit.days import Interval


@dataclass(frozen=True)
class WorkingHours:
    weekday: int  # 0 = Monday, as date.weekday()
    start: time
    end: time


@dataclass(frozen=True)
class Busy:
    """Places in use over an interval: `places` appointments with the same start and end."""

    starts_at: datetime
    ends_at: datetime
    places: int = 1


@dataclass(frozen=True)
class Schedule:
    timezone: ZoneInfo
    working_hours: Sequence[WorkingHours]
    slot_interval_minutes: int
    duration_minutes: int
    buffer_minutes: int
    capacity: int
    min_notice_minutes: int
    max_advance_days: int
    closures: Sequence[Interval] = ()

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def buffer(self) -> timedelta:
        return timedelta(minutes=self.buffer_minutes)


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime
    remaining: int


def to_utc(local: datetime, zone: ZoneInfo) -> datetime | None:
    """The instant of a naive wall-clock time in `zone`, or None when it does not exist."""
    instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        return None
    return instant


def _steady_offset(day: date, zone: ZoneInfo) -> timedelta | None:
    """The zone's UTC offset over a whole local day, or None on a day the offset changes.
    Most days have one: their slots then convert by subtraction instead of a zone lookup."""
    start = datetime.combine(day, time.min, tzinfo=zone)
    noon = datetime.combine(day, time(12), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    offset = start.utcoffset()
    if offset is None or noon.utcoffset() != offset or end.utcoffset() != offset:
        return None
    return offset


def _days(first_day: date, last_day: date) -> Iterator[date]:
    day = first_day
    while day <= last_day:
        yield day
        day += timedelta(days=1)


def _overlaps(start: datetime, end: datetime, intervals: Sequence[Interval]) -> bool:
    return any(i.starts_at < end and start < i.ends_at for i in intervals)


def candidate_starts(
    schedule: Schedule, first_day: date, last_day: date, now: datetime
) -> Iterator[Interval]:
    """Every slot the schedule offers between two local dates, before counting capacity:
    on the grid, inside working hours, outside closures, within notice and advance."""
    zone = schedule.timezone
    step = timedelta(minutes=schedule.slot_interval_minutes)
    duration = schedule.duration
    earliest = now + timedelta(minutes=schedule.min_notice_minutes)
    latest = now + timedelta(days=schedule.max_advance_days)
    for day in _days(first_day, last_day):
        offset = _steady_offset(day, zone)
        starts: set[datetime] = set()
        for period in (h for h in schedule.working_hours if h.weekday == day.weekday()):
            period_end = datetime.combine(day, period.end).replace(tzinfo=zone).astimezone(UTC)
            local = datetime.combine(day, period.start)
            while local.date() == day and local.time() < period.end:
                starts_at = (
                    to_utc(local, zone) if offset is None else (local - offset).replace(tzinfo=UTC)
                )
                local += step
                if starts_at is None:
                    continue
                if starts_at + duration > period_end:
                    break
                starts.add(starts_at)
        for starts_at in sorted(starts):
            ends_at = starts_at + duration
            if earliest <= starts_at <= latest and not _overlaps(
                starts_at, ends_at, schedule.closures
            ):
                yield Interval(starts_at, ends_at)


# A place in use as POSIX seconds (start, end including the buffer, places): comparing floats
# is many times cheaper than comparing zone-aware datetimes, and a month holds many places.
_Place = tuple[float, float, int]


def _peak(start: float, end: float, occupied: Sequence[_Place]) -> int:
    """The most places of `occupied` in use at one instant of [start, end)."""
    instants = [start, *(o[0] for o in occupied if start < o[0] < end)]
    return max(sum(o[2] for o in occupied if o[0] <= t < o[1]) for t in instants)


def available_slots(
    schedule: Schedule,
    first_day: date,
    last_day: date,
    now: datetime,
    busy: Sequence[Busy],
) -> list[Slot]:
    """Offered slots with at least one free place; `busy` are the active appointments."""
    buffer = schedule.buffer.total_seconds()
    occupied = sorted(
        (b.starts_at.timestamp(), b.ends_at.timestamp() + buffer, b.places) for b in busy
    )
    starts = [o[0] for o in occupied]
    # Only places that start less than the longest place before a candidate can overlap it;
    # with a service's uniform durations that keeps each look-up to a handful of rows.
    longest = max((o[1] - o[0] for o in occupied), default=0.0)
    slots = []
    for candidate in candidate_starts(schedule, first_day, last_day, now):
        start = candidate.starts_at.timestamp()
        place_end = candidate.ends_at.timestamp() + buffer
        nearby = occupied[bisect_right(starts, start - longest) : bisect_left(starts, place_end)]
        overlapping = [o for o in nearby if start < o[1]]
        remaining = schedule.capacity - _peak(start, place_end, overlapping)
        if remaining > 0:
            slots.append(Slot(candidate.starts_at, candidate.ends_at, remaining))
    return slots


def is_offered(schedule: Schedule, starts_at: datetime, now: datetime) -> bool:
    """Whether `starts_at` is a slot the schedule offers (capacity aside)."""
    day = starts_at.astimezone(schedule.timezone).date()
    return any(c.starts_at == starts_at for c in candidate_starts(schedule, day, day, now))
