"""The rules of availability, booking and the appointment lifecycle. No SQL here, and no
commit: the request owns the transaction. Capacity and status changes are finally decided by
the database's triggers (see migration 0003), whoever writes."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from slotease.appointments import calendar
from slotease.appointments import repository as repo
from slotease.appointments.calendar import CalendarEntry
from slotease.appointments.schemas import (
    Appointment,
    AppointmentCreate,
    AppointmentFilters,
    AppointmentUpdate,
    Feedback,
    FeedbackCreate,
    Ratings,
)
from slotease.appointments.slots import (
    DaySlots,
    Schedule,
    WorkingHours,
    day_json,
    is_offered,
    lead_limits,
    offered_days,
    slots_document,
    within,
)
from slotease.auth.principal import Principal
from slotease.db.database import SERVICE, Connection, Database
from slotease.db.queries import Row
from slotease.kit.cache import Cache
from slotease.kit.days import Interval, day_window
from slotease.kit.events import DomainEvent, emit, run_transactional_now
from slotease.kit.eventtypes import AppointmentEventName
from slotease.kit.pagination import Page, cursor_key, page_of, timestamp_key
from slotease.kit.problems import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from slotease.kit.secrets import hash_secret

MAX_RANGE_DAYS = 62
# The feed shows the recent past too, so a calendar keeps what just happened.
CALENDAR_FEED_PAST = timedelta(days=30)
CALENDAR_FEED_MAX_EVENTS = 1000
CALENDAR_TOKEN_PREFIX = "cal_"
# Entries are keyed by versions and hold for every `now`, so the TTL only bounds memory.
SLOTS_CACHE_TTL_SECONDS = 120


def _engine_now() -> datetime:
    """Now, rounded up to the minute. Availability and booking both judge notice and advance
    against this value, so a slot listed during a minute is bookable during that minute."""
    now = datetime.now(UTC)
    floored = now.replace(second=0, microsecond=0)
    return floored if floored == now else floored + timedelta(minutes=1)


def _slots_namespace(service_id: UUID) -> str:
    return f"slots:{service_id}"


def _schedule(row: Row, closures: list[Row]) -> Schedule:
    return Schedule(
        timezone=ZoneInfo(row["timezone"]),
        working_hours=[
            WorkingHours(weekday, start, end)
            for weekday, start, end in zip(row["weekdays"], row["starts"], row["ends"], strict=True)
        ],
        slot_interval_minutes=row["slot_interval_minutes"],
        duration_minutes=row["duration_minutes"],
        buffer_minutes=row["buffer_minutes"],
        capacity=row["capacity"],
        min_notice_minutes=row["min_notice_minutes"],
        max_advance_days=row["max_advance_days"],
        closures=[Interval(c["starts_at"], c["ends_at"]) for c in closures],
    )


def _offering(row: Row | None) -> Row:
    if row is None or not row["is_active"]:
        raise NotFound("No such service.")
    return row


async def active_service(conn: Connection, service_id: UUID) -> Row:
    return _offering(await repo.schedule(conn, service_id))


@dataclass(frozen=True)
class SlotsRequest:
    """One availability question, and where the answer of each of its days is cached."""

    service_id: UUID
    days: list[date]
    now: datetime
    day_keys: list[str]
    # The days found by the last look-up, so that a miss computes the others without reading
    # the cache again.
    found: dict[str, str] = field(default_factory=dict)


async def slots_request(
    db: Database, service_id: UUID, first_day: date, last_day: date
) -> SlotsRequest:
    if last_day < first_day:
        raise Unprocessable("`from` must not be after `to`.")
    if (last_day - first_day).days + 1 > MAX_RANGE_DAYS:
        raise Unprocessable(f"The range may span at most {MAX_RANGE_DAYS} days.")
    now = _engine_now()
    # The versions are read before the answer is computed: an answer computed from a snapshot
    # older than a change is stored under the versions that change has since replaced. The
    # database bumps them in every writer's transaction, so they are current once a change
    # answered. A day is keyed by its service's version and its own.
    versions = await repo.availability_versions(db, service_id, first_day, last_day)
    days = [first_day + timedelta(days=n) for n in range(len(versions.days))]
    namespace = f"{_slots_namespace(service_id)}:{versions.service}"
    keys = [f"{namespace}:{day}:{v}" for day, v in zip(days, versions.days, strict=True)]
    return SlotsRequest(service_id, days, now, keys)


# A cached day holds for every `now`: computed without the notice and advance rules, which are
# applied as it is served. Its lines: "<notice minutes> <advance days> <timezone>", the slots'
# starts (microseconds since the epoch, space-separated), then one JSON object per slot.
def _day_entry(schedule: Schedule, timezone: str, day: DaySlots) -> str:
    header = f"{schedule.min_notice_minutes} {schedule.max_advance_days} {timezone}"
    starts = " ".join(str(start) for start, _, _ in day.slots)
    return "\n".join([header, starts, *day_json(day, schedule.timezone)])


def _document(question: SlotsRequest, entries: list[str]) -> str:
    """The answer from the cached days, each cut to the slots bookable at `question.now`."""
    timezone = "UTC"
    slots: list[str] = []
    for entry in entries:
        header, starts, *objects = entry.split("\n")
        notice, advance, timezone = header.split(" ")
        if not objects:
            continue
        limits = lead_limits(question.now, int(notice), int(advance))
        first, _, rest = starts.partition(" ")
        # Most days lie wholly between the limits: their slots are taken as they are.
        if limits[0] <= int(first) and int(rest.rpartition(" ")[2] or first) <= limits[1]:
            slots.extend(objects)
        else:
            slots.extend(objects[within([int(s) for s in starts.split(" ")], limits)])
    return slots_document(question.service_id, timezone, slots)


async def cached_slots_json(cache: Cache, question: SlotsRequest) -> str | None:
    """The answer when every day of it is cached: the hot path touches no database."""
    entries = await cache.get_many(question.day_keys)
    question.found.update(
        (key, entry) for key, entry in zip(question.day_keys, entries, strict=True) if entry
    )
    if len(question.found) < len(question.day_keys):
        return None
    return _document(question, [question.found[key] for key in question.day_keys])


def inputs_window(first_day: date, last_day: date) -> Interval:
    """UTC instants around every zone's version of the local days, known before the
    service's zone is (the slot engine checks each candidate against the closures and places
    anyway): offsets stay within 14 hours of UTC, and the last slot's place runs up to a
    24-hour buffer past the last local midnight, so the window ends two days after it.
    `app.busy_intervals` looks back 48 hours for the places that began before."""
    return Interval(
        datetime.combine(first_day - timedelta(days=1), time.min, tzinfo=UTC),
        datetime.combine(last_day + timedelta(days=3), time.min, tzinfo=UTC),
    )


async def compute_slots_json(conn: Connection, cache: Cache, question: SlotsRequest) -> str:
    """The answer, computing only the days its look-up missed (a booking moves on the days
    it touches, not the month)."""
    missing = [
        day
        for day, key in zip(question.days, question.day_keys, strict=True)
        if key not in question.found
    ]
    if missing:
        window = inputs_window(missing[0], missing[-1])
        row = _offering(
            await repo.availability_inputs(
                conn, question.service_id, window.starts_at, window.ends_at
            )
        )
        closures = [
            {"starts_at": start, "ends_at": end}
            for start, end in zip(row["closure_starts"], row["closure_ends"], strict=True)
        ]
        schedule = _schedule(row, closures)
        places = list(zip(row["busy_starts"], row["busy_ends"], row["busy_places"], strict=True))
        offered = {d.day: d for d in offered_days(schedule, missing, None, places)}
        computed = {
            key: _day_entry(schedule, row["timezone"], offered[day])
            for day, key in zip(question.days, question.day_keys, strict=True)
            if day in offered
        }
        await cache.set_many(computed, SLOTS_CACHE_TTL_SECONDS)
        question.found.update(computed)
    return _document(question, [question.found[key] for key in question.day_keys])


def _appointment(row: Row) -> Appointment:
    zone = ZoneInfo(row["timezone"] or "UTC")
    return Appointment(
        id=row["id"],
        organization_id=row["organization_id"],
        service_id=row["service_id"],
        customer_id=row["customer_id"],
        starts_at=row["starts_at"].astimezone(zone),
        ends_at=row["ends_at"].astimezone(zone),
        status=row["status"],
        notes=row["notes"],
    )


def changed(event: AppointmentEventName, appointment: Appointment) -> None:
    """Announce a change of an appointment (the database has already moved its service's
    availability version on)."""
    emit(DomainEvent(event, appointment.model_dump(mode="json")))


async def offered_end(conn: Connection, service: Row | None, starts_at: datetime) -> datetime:
    """The end of the slot starting at `starts_at`, or a 409 when no such slot is offered."""
    if service is None or not service["is_active"]:
        raise Conflict("The service no longer takes bookings.")
    zone = ZoneInfo(service["timezone"])
    local_day = starts_at.astimezone(zone).date()
    window = day_window(local_day, local_day, zone)
    closures = await repo.closures(conn, service["id"], window.starts_at, window.ends_at)
    schedule = _schedule(service, closures)
    if not is_offered(schedule, starts_at, _engine_now()):
        raise Conflict(
            "This time is not an offered slot (off the grid, outside working hours, closed, "
            "too soon or too far ahead)."
        )
    return starts_at + schedule.duration


def _request_hash(method: str, path: str, body: AppointmentCreate) -> str:
    canonical = json.dumps(
        [method, path, body.model_dump(mode="json")], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def book(
    conn: Connection,
    principal: Principal,
    body: AppointmentCreate,
    *,
    idempotency_key: str | None,
    method: str,
    path: str,
) -> tuple[int, dict[str, Any]]:
    """Book a slot; with an idempotency key, a repeated request gets the first answer.

    Only a successful booking is remembered: a refused one rolls back with its key, so
    sending it again is tried afresh (and can never book twice, since nothing was booked).
    """
    if idempotency_key is not None:
        request_hash = _request_hash(method, path, body)
        if not await repo.claim_idempotency_key(conn, idempotency_key, method, path, request_hash):
            record = await repo.idempotency_record(conn, idempotency_key)
            if record is not None and record["request_hash"] != request_hash:
                raise Unprocessable("This Idempotency-Key was used with another request.")
            if record is None or record["response_status"] is None:
                raise Conflict("A request with this Idempotency-Key is still in progress.")
            # Through the model again: jsonb keeps no key order, the first answer had one.
            replay = Appointment.model_validate(record["response_body"])
            return record["response_status"], replay.model_dump(mode="json")

    customer_id = body.customer_id or principal.user_id
    if customer_id is None:
        raise Unprocessable("customer_id is required when booking with an API key.")
    service = await active_service(conn, body.service_id)
    ends_at = await offered_end(conn, service, body.starts_at)
    values = {
        "id": uuid4(),
        "organization_id": service["organization_id"],
        "service_id": body.service_id,
        "customer_id": customer_id,
        "starts_at": body.starts_at,
        "ends_at": ends_at,
        "notes": body.notes,
    }
    # The row is known before it is written (a new appointment is booked), so what the booking
    # owes can be worked out before the INSERT takes the service's capacity lock, which is
    # held until the COMMIT: the answer to keep, the jobs and webhook deliveries of its event
    # go with the INSERT in one round trip, and the commit follows.
    appointment = _appointment({**values, "status": "booked", "timezone": service["timezone"]})
    answer = appointment.model_dump(mode="json")
    async with repo.round_trip(conn):
        if idempotency_key is not None:
            await repo.save_idempotent_response(
                conn, idempotency_key, appointment.organization_id, 201, answer
            )
        await repo.insert_appointment(conn, values)
        changed("appointment.created", appointment)
        await run_transactional_now(conn)
    return 201, answer


async def _visible_row(conn: Connection, appointment_id: UUID) -> Row:
    row = await repo.get_appointment(conn, appointment_id)
    if row is None:
        raise NotFound("No such appointment.")
    return row


async def get_appointment(conn: Connection, appointment_id: UUID) -> Appointment:
    return _appointment(await _visible_row(conn, appointment_id))


async def list_appointments(
    conn: Connection, principal: Principal, filters: AppointmentFilters
) -> Page[Appointment]:
    """Without `organization_id`, the caller's own appointments; with it, that organization's
    (row-level security shows staff all of them, and a customer only their own)."""
    if filters.from_day and filters.to_day and filters.to_day < filters.from_day:
        raise Unprocessable("`from` must not be after `to`.")
    if filters.organization_id is None and principal.user_id is None:
        raise Unprocessable("organization_id is required with an API key.")
    after = cursor_key(filters.cursor, timestamp_key)
    customer_id = principal.user_id if filters.organization_id is None else None
    rows = await repo.list_appointments(conn, filters, customer_id=customer_id, after=after)
    items, next_cursor = page_of(rows, filters.limit, ["starts_at", "id"])
    return Page[Appointment](items=[_appointment(r) for r in items], next_cursor=next_cursor)


async def announce_waitlist_offers(conn: Connection) -> None:
    """Announce the waitlist offers the database made in this transaction (a freed place goes
    to the first waiter of its slot), once it commits."""
    for offer in await repo.take_offers_made(conn):
        emit(DomainEvent("waitlist.offered", offer))


async def _apply(conn: Connection, current: Row, changes: dict[str, Any]) -> Appointment:
    row = await repo.update_appointment(conn, current["id"], changes)
    if row is None:
        raise Forbidden("You may not change this appointment.")
    await announce_waitlist_offers(conn)
    appointment = _appointment(row)
    if "starts_at" in changes:
        changed("appointment.rescheduled", appointment)
    if "status" in changes:
        event: AppointmentEventName = (
            "appointment.cancelled"
            if changes["status"] == "cancelled"
            else "appointment.status_changed"
        )
        changed(event, appointment)
    return appointment


async def update_appointment(
    conn: Connection, appointment_id: UUID, body: AppointmentUpdate
) -> Appointment:
    current = await _visible_row(conn, appointment_id)
    changes: dict[str, Any] = {}
    if "notes" in body.model_fields_set:
        changes["notes"] = body.notes
    if body.starts_at is not None and body.starts_at != current["starts_at"]:
        changes["starts_at"] = body.starts_at
        service = await repo.schedule(conn, current["service_id"])
        changes["ends_at"] = await offered_end(conn, service, body.starts_at)
    if body.status is not None and body.status != current["status"]:
        changes["status"] = body.status
    if not changes:
        return _appointment(current)
    return await _apply(conn, current, changes)


async def cancel_appointment(conn: Connection, appointment_id: UUID) -> Appointment:
    current = await _visible_row(conn, appointment_id)
    if current["status"] == "cancelled":
        return _appointment(current)
    return await _apply(conn, current, {"status": "cancelled"})


async def give_feedback(
    conn: Connection, principal: Principal, appointment_id: UUID, body: FeedbackCreate
) -> Feedback:
    current = await _visible_row(conn, appointment_id)
    if current["customer_id"] != principal.user_id:
        raise Forbidden("Only the customer may rate an appointment.")
    if current["status"] != "completed":
        raise Conflict("Feedback can be given once the appointment is completed.")
    row = await repo.insert_feedback(conn, current, body.rating, body.comment)
    return Feedback.model_validate(row)


async def ratings(conn: Connection, service_id: UUID) -> Ratings:
    if not await repo.service_is_visible(conn, service_id):
        raise NotFound("No such service.")
    stats = await repo.rating_stats(conn, service_id)
    average = stats["average"]
    return Ratings(
        service_id=service_id,
        count=stats["count"],
        average=None if average is None else float(average),
        distribution={str(star): n for star, n in enumerate(stats["distribution"], start=1)},
    )


def _calendar_entry(row: Row) -> CalendarEntry:
    return CalendarEntry(**{f.name: row[f.name] for f in fields(CalendarEntry)})


async def calendar_document(conn: Connection, appointment_id: UUID) -> bytes | None:
    """The appointment as an iCalendar document, or None when the caller cannot see it: both
    the `.ics` download and the attachment of the emails about it."""
    row = await repo.calendar_row(conn, appointment_id)
    return None if row is None else calendar.render([_calendar_entry(row)])


async def appointment_calendar(conn: Connection, appointment_id: UUID) -> bytes:
    document = await calendar_document(conn, appointment_id)
    if document is None:
        raise NotFound("No such appointment.")
    return document


async def calendar_feed(conn: Connection) -> bytes:
    """The signed-in user's own appointments from 30 days back on, cancelled ones included
    (as CANCELLED events, so calendars drop them)."""
    rows = await repo.calendar_feed_rows(
        conn, datetime.now(UTC) - CALENDAR_FEED_PAST, CALENDAR_FEED_MAX_EVENTS
    )
    return calendar.render([_calendar_entry(r) for r in rows], name="SlotEase appointments")


async def issue_calendar_token(conn: Connection) -> str:
    """A new feed token for the caller, replacing any earlier one; shown only now."""
    token = CALENDAR_TOKEN_PREFIX + secrets.token_urlsafe(32)
    await repo.save_calendar_token(conn, hash_secret(token))
    return token


async def revoke_calendar_token(conn: Connection) -> None:
    await repo.delete_calendar_token(conn)


async def calendar_feed_owner(conn: Connection, token: str) -> UUID:
    user_id = await repo.calendar_feed_owner(conn, hash_secret(token))
    if user_id is None:
        raise Unauthorized("The calendar feed token is not valid (it may have been revoked).")
    return user_id


async def purge_expired_idempotency_keys(db: Database) -> int:
    """Keys are remembered for their lifetime only; an expired one is already free for reuse
    (see `claim_idempotency_key`), so removing it changes no answer."""
    async with db.transaction(SERVICE) as conn:
        return await repo.delete_expired_idempotency_keys(conn)
