"""The availability document written directly is the one pydantic writes from the models."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings

from slotease.appointments import service
from slotease.appointments.schemas import AvailableSlots, SlotOut
from slotease.appointments.slots import (
    Busy,
    Schedule,
    WorkingHours,
    available_slots,
    day_json,
    offered_days,
    places_of,
    slots_document,
)
from tests.appointments.test_slots import schedules

SERVICE = uuid.UUID("8a1f0d7e-4c1b-4a43-9c55-1a2b3c4d5e6f")


def _through_models(
    schedule: Schedule, first_day: date, last_day: date, now: datetime, busy: list[Busy]
) -> str:
    zone = schedule.timezone
    return AvailableSlots(
        service_id=SERVICE,
        timezone=zone.key,
        slots=[
            SlotOut(
                starts_at=s.starts_at.astimezone(zone),
                ends_at=s.ends_at.astimezone(zone),
                remaining=s.remaining,
            )
            for s in available_slots(schedule, first_day, last_day, now, busy)
        ],
    ).model_dump_json()


def _direct(
    schedule: Schedule, first_day: date, last_day: date, now: datetime, busy: list[Busy]
) -> str:
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    offered = offered_days(schedule, days, now, places_of(busy))
    objects = [o for day in offered for o in day_json(day, schedule.timezone)]
    return slots_document(SERVICE, schedule.timezone.key, objects)


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_the_document_is_the_models_document(
    case: tuple[Schedule, date, date, datetime, list[Busy]],
) -> None:
    assert _direct(*case) == _through_models(*case)


def test_zero_offsets_seconds_and_changes_of_offset_are_written_as_pydantic_does() -> None:
    # Zero offsets are written "Z"; a start with seconds, and a day whose offset changes
    # (Paris, 2026-10-25), go through the zone.
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for zone in ("UTC", "Europe/London", "Asia/Kolkata", "Europe/Paris"):
        schedule = Schedule(
            timezone=ZoneInfo(zone),
            working_hours=[WorkingHours(d, time(0, 0, 30), time(23, 59, 59)) for d in range(7)],
            slot_interval_minutes=45,
            duration_minutes=60,
            buffer_minutes=5,
            capacity=3,
            min_notice_minutes=0,
            max_advance_days=400,
        )
        first_day = date(2026, 10, 23)
        booked = datetime(2026, 10, 24, 9, 0, 30, tzinfo=ZoneInfo(zone))
        busy = [Busy(booked, booked + timedelta(minutes=60), 2)]
        case = (schedule, first_day, first_day + timedelta(days=3), now, busy)
        assert _direct(*case) == _through_models(*case)


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_a_cached_day_cut_at_serving_time_is_the_answer_computed_then(
    case: tuple[Schedule, date, date, datetime, list[Busy]],
) -> None:
    """Days are cached without the notice and advance rules, which are applied as they are
    served: the answer is the one computed at that `now`."""
    schedule, first_day, last_day, now, busy = case
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    zone = schedule.timezone.key
    entries = [
        service._day_entry(schedule, zone, day)
        for day in offered_days(schedule, days, None, places_of(busy))
    ]
    question = service.SlotsRequest(SERVICE, days, now, [str(day) for day in days])
    assert service._document(question, entries) == _through_models(*case)
