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

import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

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


# The engine counts in integer microseconds since the epoch (UTC): comparing and adding ints
# is many times cheaper than zone-aware datetimes, and exact where floats would round.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SECOND = 1_000_000
_MINUTE = 60 * _SECOND
_DAY = 86_400 * _SECOND


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def instant(micros_since_epoch: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros_since_epoch)


def _clock_micros(moment: time) -> int:
    return ((moment.hour * 60 + moment.minute) * 60 + moment.second) * _SECOND + moment.microsecond


def _days(first_day: date, last_day: date) -> Iterator[date]:
    day = first_day
    while day <= last_day:
        yield day
        day += timedelta(days=1)


# A slot as (start, end, places left), in microseconds since the epoch.
Offer = tuple[int, int, int]


@dataclass(frozen=True)
class DaySlots:
    """The offered slots of one local day. `offset` is the zone's UTC offset (microseconds)
    over the whole day, or None on a day the offset changes."""

    day: date
    offset: int | None
    slots: list[Offer]


class _Candidates:
    """The grid of one schedule: starts inside working hours, before closures and limits.

    On a day with one UTC offset the wall-clock grid of a weekday is the same every week, so
    it is computed once per weekday (as microseconds after local midnight) and shifted; only
    the days of an offset change walk their wall-clock times through the zone."""

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule
        self._templates: dict[int, list[int]] = {}

    def _template(self, weekday: int) -> list[int]:
        template = self._templates.get(weekday)
        if template is None:
            step = self._schedule.slot_interval_minutes * _MINUTE
            duration = self._schedule.duration_minutes * _MINUTE
            starts: set[int] = set()
            for period in self._schedule.working_hours:
                if period.weekday == weekday:
                    # Offered while the slot ends by the period's end: start + duration <= end.
                    end = _clock_micros(period.end)
                    starts.update(range(_clock_micros(period.start), end - duration + 1, step))
            template = self._templates[weekday] = sorted(starts)
        return template

    def _shifting_day(self, day: date) -> list[int]:
        """The starts of a day whose offset changes, wall-clock time by wall-clock time."""
        schedule = self._schedule
        zone = schedule.timezone
        step = timedelta(minutes=schedule.slot_interval_minutes)
        starts: set[int] = set()
        for period in (h for h in schedule.working_hours if h.weekday == day.weekday()):
            period_end = datetime.combine(day, period.end).replace(tzinfo=zone).astimezone(UTC)
            local = datetime.combine(day, period.start)
            while local.date() == day and local.time() < period.end:
                starts_at = to_utc(local, zone)
                local += step
                if starts_at is None:
                    continue
                if starts_at + schedule.duration > period_end:
                    break
                starts.add(micros(starts_at))
        return sorted(starts)

    def day(self, day: date) -> tuple[int | None, list[int]]:
        """The day's steady offset (or None) and its grid starts, sorted."""
        steady = _steady_offset(day, self._schedule.timezone)
        if steady is None:
            return None, self._shifting_day(day)
        offset = steady // _MICROSECOND
        base = micros(datetime.combine(day, time.min, tzinfo=UTC)) - offset
        return offset, [base + start for start in self._template(day.weekday())]


def lead_limits(now: datetime, min_notice_minutes: int, max_advance_days: int) -> tuple[int, int]:
    """The first and last start a booking made `now` may take."""
    return (
        micros(now) + min_notice_minutes * _MINUTE,
        micros(now + timedelta(days=max_advance_days)),
    )


def within(starts: list[int], limits: tuple[int, int]) -> slice:
    """The part of sorted `starts` between the limits, inclusive."""
    return slice(bisect_left(starts, limits[0]), bisect_right(starts, limits[1]))


def _bookable(schedule: Schedule, starts: list[int], now: datetime | None) -> list[int]:
    """The starts that miss every closure and, unless `now` is None, are within notice and
    advance (all sorted)."""
    kept = starts
    if now is not None:
        kept = starts[
            within(starts, lead_limits(now, schedule.min_notice_minutes, schedule.max_advance_days))
        ]
    duration = schedule.duration_minutes * _MINUTE
    for closure in schedule.closures:
        # A slot [s, s + duration) meets [c0, c1) when c0 - duration < s < c1.
        closed_from = micros(closure.starts_at) - duration
        closed_to = micros(closure.ends_at)
        lo = bisect_right(kept, closed_from)
        hi = bisect_left(kept, closed_to)
        if lo < hi:
            kept = kept[:lo] + kept[hi:]
    return kept


def candidate_starts(
    schedule: Schedule, first_day: date, last_day: date, now: datetime
) -> Iterator[Interval]:
    """Every slot the schedule offers between two local dates, before counting capacity:
    on the grid, inside working hours, outside closures, within notice and advance."""
    candidates = _Candidates(schedule)
    for day in _days(first_day, last_day):
        _, starts = candidates.day(day)
        for start in _bookable(schedule, starts, now):
            yield Interval(instant(start), instant(start) + schedule.duration)


# A place in use: (start, end, places) in microseconds since the epoch, the buffer not added.
Place = tuple[int, int, int]


def places_of(busy: Sequence[Busy]) -> list[Place]:
    return [(micros(b.starts_at), micros(b.ends_at), b.places) for b in busy]


def offered_days(
    schedule: Schedule,
    days: Iterable[date],
    now: datetime | None,
    places: Sequence[Place],
) -> list[DaySlots]:
    """Offered slots with at least one free place, day by day; `places` are those of the
    active appointments. With `now` None, the notice and advance rules are left to the
    caller (`lead_limits`), so that the answer holds whenever it is served."""
    buffer = schedule.buffer_minutes * _MINUTE
    duration = schedule.duration_minutes * _MINUTE
    capacity = schedule.capacity
    # A place is occupied over [start, end + buffer).
    occupied = sorted((start, end + buffer, count) for start, end, count in places)
    place_starts = [o[0] for o in occupied]
    # Only places that start less than the longest place before a candidate can overlap it;
    # with a service's uniform durations that keeps each look-up to a handful of rows.
    longest = max((o[1] - o[0] for o in occupied), default=0)
    candidates = _Candidates(schedule)
    offered = []
    for day in days:
        offset, starts = candidates.day(day)
        slots = []
        for start in _bookable(schedule, starts, now):
            end = start + duration
            lo = bisect_right(place_starts, start - longest)
            hi = bisect_left(place_starts, end + buffer, lo)
            if hi - lo == 1:  # the usual case: the place of this very slot, or none
                place = occupied[lo]
                remaining = capacity - place[2] if start < place[1] else capacity
            else:
                overlapping = [o for o in occupied[lo:hi] if start < o[1]]
                remaining = capacity - _peak(start, overlapping) if overlapping else capacity
            if remaining > 0:
                slots.append((start, end, remaining))
        offered.append(DaySlots(day, offset, slots))
    return offered


def _peak(start: int, overlapping: list[tuple[int, int, int]]) -> int:
    """The most places of `overlapping` (each meeting the slot) in use at one instant of it:
    the concurrency can only rise at the slot's start or at a place's start inside it."""
    if len(overlapping) == 1:
        return overlapping[0][2]
    instants = [start, *(o[0] for o in overlapping if o[0] > start)]
    return max(sum(o[2] for o in overlapping if o[0] <= t < o[1]) for t in instants)


def available_slots(
    schedule: Schedule,
    first_day: date,
    last_day: date,
    now: datetime,
    busy: Sequence[Busy],
) -> list[Slot]:
    """Offered slots with at least one free place; `busy` are the active appointments."""
    return [
        Slot(instant(start), instant(end), remaining)
        for day in offered_days(schedule, _days(first_day, last_day), now, places_of(busy))
        for start, end, remaining in day.slots
    ]


def is_offered(schedule: Schedule, starts_at: datetime, now: datetime) -> bool:
    """Whether `starts_at` is a slot the schedule offers (capacity aside)."""
    day = starts_at.astimezone(schedule.timezone).date()
    _, starts = _Candidates(schedule).day(day)
    return micros(starts_at) in _bookable(schedule, starts, now)


# ---------------------------------------------------------------------------------------
# The answer as JSON, written directly: the same text pydantic writes for `AvailableSlots`
# (RFC 3339 local times, "Z" for a zero offset), without a datetime per slot.
# ---------------------------------------------------------------------------------------
_DATETIME = TypeAdapter(datetime)


@cache
def _clock(seconds: int) -> str:
    minutes, second = divmod(seconds, 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:{second:02d}"


def _zone_suffix(offset: int) -> str | None:
    """The offset as pydantic writes it, or None for one it writes otherwise (seconds)."""
    if offset == 0:
        return "Z"
    if offset % _MINUTE:
        return None
    minutes = abs(offset) // _MINUTE
    return f"{'-' if offset < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


def day_json(day: DaySlots, zone: ZoneInfo) -> list[str]:
    """The slots of one day as JSON objects, as pydantic writes `SlotOut`. Local times come by
    arithmetic within the day's steady offset, through the zone otherwise (an offset change, a
    time with a fraction of a second, the next midnight, which may not exist on the wall
    clock)."""
    suffix = None if day.offset is None else _zone_suffix(day.offset)
    midnight = micros(datetime.combine(day.day, time.min, tzinfo=UTC)) - (day.offset or 0)
    date_part = f"{day.day.isoformat()}T"
    objects = []
    for start, end, remaining in day.slots:
        since_start, since_end = start - midnight, end - midnight
        if suffix is None or since_start % _SECOND or since_end % _SECOND or since_end >= _DAY:
            starts_at = _DATETIME.dump_json(instant(start).astimezone(zone)).decode()
            ends_at = _DATETIME.dump_json(instant(end).astimezone(zone)).decode()
            objects.append(
                f'{{"starts_at":{starts_at},"ends_at":{ends_at},"remaining":{remaining}}}'
            )
        else:
            objects.append(
                f'{{"starts_at":"{date_part}{_clock(since_start // _SECOND)}{suffix}",'
                f'"ends_at":"{date_part}{_clock(since_end // _SECOND)}{suffix}",'
                f'"remaining":{remaining}}}'
            )
    return objects


def slots_document(service_id: UUID, timezone: str, slots: Iterable[str]) -> str:
    """The `AvailableSlots` document of the slots' JSON objects."""
    return (
        f'{{"service_id":"{service_id}","timezone":{json.dumps(timezone)},'
        f'"slots":[{",".join(slots)}]}}'
    )
