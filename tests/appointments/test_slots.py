"""The slot engine, checked against its definition over random weekly schedules, zones and
dates around daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from slotease.appointments.slots import (
    Busy,
    Schedule,
    Slot,
    WorkingHours,
    available_slots,
    is_offered,
)
from slotease.kit.days import Interval

ZONES = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
    "UTC",
]
# Days on which at least one of the zones changes its clocks.
DST_DAYS = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 9, 6),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
]


@st.composite
def schedules(draw: st.DrawFn) -> tuple[Schedule, date, date, datetime, list[Busy]]:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    hours = []
    for weekday in range(7):
        for _ in range(draw(st.integers(0, 2))):
            start = draw(st.integers(0, 23 * 12)) * 5
            end = draw(st.integers(start // 5 + 1, 24 * 12 - 1)) * 5
            hours.append(WorkingHours(weekday, _minutes(start), _minutes(end)))
    first_day = draw(st.sampled_from(DST_DAYS)) + timedelta(days=draw(st.integers(-3, 1)))
    last_day = first_day + timedelta(days=draw(st.integers(0, 4)))
    window_start = datetime.combine(first_day, time.min, tzinfo=zone)
    now = window_start + timedelta(minutes=draw(st.integers(-2 * 1440, 3 * 1440)))

    def instant() -> datetime:
        return window_start + timedelta(minutes=5 * draw(st.integers(-288, 6 * 288)))

    closures = []
    for _ in range(draw(st.integers(0, 3))):
        start = instant()
        closures.append(Interval(start, start + timedelta(minutes=5 * draw(st.integers(1, 200)))))
    duration = draw(st.sampled_from([5, 15, 30, 45, 60, 90]))
    schedule = Schedule(
        timezone=zone,
        working_hours=hours,
        slot_interval_minutes=draw(st.sampled_from([5, 10, 15, 30, 60, duration])),
        duration_minutes=duration,
        buffer_minutes=draw(st.sampled_from([0, 0, 5, 10, 30])),
        capacity=draw(st.integers(1, 3)),
        min_notice_minutes=draw(st.sampled_from([0, 60, 1440])),
        max_advance_days=draw(st.integers(1, 5)),
        closures=closures,
    )
    busy = []
    for _ in range(draw(st.integers(0, 25))):
        start = instant()
        busy.append(Busy(start, start + timedelta(minutes=duration), draw(st.integers(1, 2))))
    return schedule, first_day, last_day, now, busy


def _minutes(total: int) -> time:
    return time(total // 60, total % 60)


def _wall_minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _peak(start: datetime, end: datetime, places: list[Interval]) -> int:
    """Brute force: concurrency at every start instant inside [start, end)."""
    instants = {start} | {p.starts_at for p in places if start <= p.starts_at < end}
    return max(
        sum(1 for p in places if p.starts_at <= t < p.ends_at and p.ends_at > start)
        for t in instants
    )


@settings(max_examples=120, deadline=None)
@given(schedules())
def test_offered_slots_obey_the_schedule(
    case: tuple[Schedule, date, date, datetime, list[Busy]],
) -> None:
    schedule, first_day, last_day, now, busy = case
    zone = schedule.timezone
    slots = available_slots(schedule, first_day, last_day, now, busy)
    # One unit interval per place: the brute force knows nothing of grouped places.
    places = [
        Interval(b.starts_at, b.ends_at + schedule.buffer) for b in busy for _ in range(b.places)
    ]

    # Unique and in order: overlapping periods, and a skipped wall-clock start that would map
    # onto a real one, must not offer a slot twice.
    starts = [s.starts_at for s in slots]
    assert starts == sorted(set(starts))
    for slot in slots:
        local = slot.starts_at.astimezone(zone)
        assert first_day <= local.date() <= last_day
        assert slot.ends_at - slot.starts_at == schedule.duration
        # On the wall-clock grid of one of that weekday's working periods, ending in it.
        assert any(
            h.weekday == local.weekday()
            and h.start <= local.time() < h.end
            and (_wall_minutes(local.time()) - _wall_minutes(h.start))
            % schedule.slot_interval_minutes
            == 0
            and slot.ends_at
            <= datetime.combine(local.date(), h.end).replace(tzinfo=zone).astimezone(UTC)
            for h in schedule.working_hours
        )
        assert not any(
            c.starts_at < slot.ends_at and slot.starts_at < c.ends_at for c in schedule.closures
        )
        assert slot.starts_at >= now + timedelta(minutes=schedule.min_notice_minutes)
        assert slot.starts_at <= now + timedelta(days=schedule.max_advance_days)
        # Taking the slot never exceeds capacity, and `remaining` is exactly what is left.
        place_end = slot.ends_at + schedule.buffer
        peak = _peak(slot.starts_at, place_end, places)
        assert slot.remaining == schedule.capacity - peak
        assert 0 < slot.remaining <= schedule.capacity
        assert is_offered(schedule, slot.starts_at, now)


def _every_bookable_start(
    schedule: Schedule, first_day: date, last_day: date, now: datetime, places: list[Interval]
) -> dict[datetime, int]:
    """Brute force from the definition: each wall-clock start on the grid of each working
    period that exists in the zone (first occurrence), ends in its period, misses every
    closure, is within the notice and advance limits and has a place left, with the places
    left."""
    zone = schedule.timezone
    bookable: dict[datetime, int] = {}
    day = first_day
    while day <= last_day:
        for hours in schedule.working_hours:
            if hours.weekday != day.weekday():
                continue
            period_end = datetime.combine(day, hours.end).replace(tzinfo=zone).astimezone(UTC)
            minute = _wall_minutes(hours.start)
            while minute < _wall_minutes(hours.end):
                wall = datetime.combine(day, _minutes(minute))
                minute += schedule.slot_interval_minutes
                start = wall.replace(tzinfo=zone).astimezone(UTC)
                if start.astimezone(zone).replace(tzinfo=None) != wall:
                    continue  # skipped when the clocks spring forward
                end = start + schedule.duration
                left = schedule.capacity - _peak(start, end + schedule.buffer, places)
                if (
                    end <= period_end
                    and not any(c.starts_at < end and start < c.ends_at for c in schedule.closures)
                    and start >= now + timedelta(minutes=schedule.min_notice_minutes)
                    and start <= now + timedelta(days=schedule.max_advance_days)
                    and left > 0
                ):
                    bookable[start] = left
        day += timedelta(days=1)
    return bookable


@settings(max_examples=120, deadline=None)
@given(schedules())
def test_every_bookable_slot_is_offered(
    case: tuple[Schedule, date, date, datetime, list[Busy]],
) -> None:
    """Completeness, the converse of the property above: an engine that offers too little (or
    nothing at all) fails here."""
    schedule, first_day, last_day, now, busy = case
    places = [
        Interval(b.starts_at, b.ends_at + schedule.buffer) for b in busy for _ in range(b.places)
    ]
    slots = available_slots(schedule, first_day, last_day, now, busy)
    offered = {s.starts_at: s.remaining for s in slots}
    assert offered == _every_bookable_start(schedule, first_day, last_day, now, places)


@settings(max_examples=60, deadline=None)
@given(schedules())
def test_a_full_slot_is_withheld_but_still_offered_for_booking(
    case: tuple[Schedule, date, date, datetime, list[Busy]],
) -> None:
    schedule, first_day, last_day, now, _ = case
    free = available_slots(schedule, first_day, last_day, now, [])
    assert all(s.remaining == schedule.capacity for s in free)
    if not free:
        return
    target = free[len(free) // 2]
    taken = [Busy(target.starts_at, target.ends_at, schedule.capacity)]
    after = available_slots(schedule, first_day, last_day, now, taken)
    assert target.starts_at not in {s.starts_at for s in after}
    assert is_offered(schedule, target.starts_at, now)


def _paris(**fields: int) -> Schedule:
    values = {
        "slot_interval_minutes": 30,
        "duration_minutes": 30,
        "buffer_minutes": 0,
        "capacity": 1,
        "min_notice_minutes": 0,
        "max_advance_days": 365,
    } | fields
    return Schedule(
        timezone=ZoneInfo("Europe/Paris"),
        working_hours=[WorkingHours(6, time(1, 0), time(4, 0)), WorkingHours(5, time(9), time(10))],
        **values,
    )


def _iso(slots: list[Slot]) -> list[str]:
    return [s.starts_at.astimezone(ZoneInfo("Europe/Paris")).isoformat() for s in slots]


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_skipped_hour_is_not_offered() -> None:
    slots = available_slots(_paris(), date(2026, 3, 29), date(2026, 3, 29), NOW, [])
    assert _iso(slots) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]


def test_the_repeated_hour_is_offered_once_at_its_first_occurrence() -> None:
    slots = available_slots(_paris(), date(2026, 10, 25), date(2026, 10, 25), NOW, [])
    assert _iso(slots) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:30:00+01:00",
    ]


def test_wall_clock_times_hold_across_the_change() -> None:
    slots = available_slots(_paris(), date(2026, 3, 28), date(2026, 4, 4), NOW, [])
    saturdays = [s for s in _iso(slots) if "T09:" in s]
    assert saturdays == [
        "2026-03-28T09:00:00+01:00",
        "2026-03-28T09:30:00+01:00",
        "2026-04-04T09:00:00+02:00",
        "2026-04-04T09:30:00+02:00",
    ]


def test_buffer_blocks_the_next_slot() -> None:
    schedule = _paris(buffer_minutes=10)
    booked = datetime(2026, 4, 4, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    slots = available_slots(
        schedule,
        date(2026, 4, 4),
        date(2026, 4, 4),
        NOW,
        [Busy(booked, booked + timedelta(minutes=30))],
    )
    # 09:30 starts inside 09:00's buffer (until 09:40).
    assert slots == []
