"""The rules of availability, booking and the appointment lifecycle. No SQL here, and no
commit: the request owns the transaction. Capacity and status changes are finally decided by
the database's triggers (see migration 0003), whoever writes."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
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
    AvailableSlots,
    Feedback,
    FeedbackCreate,
    Ratings,
    SlotOut,
)
from slotease.appointments.slots import (
    Busy,
    Schedule,
    WorkingHours,
    available_slots,
    is_offered,
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
# Entries also carry the minute they were computed for, so the TTL only bounds memory.
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


async def active_service(conn: Connection, service_id: UUID) -> Row:
    row = await repo.schedule(conn, service_id)
    if row is None or not row["is_active"]:
        raise NotFound("No such service.")
    return row


@dataclass(frozen=True)
class SlotsRequest:
    """One availability question, and where its answer is cached."""

    service_id: UUID
    first_day: date
    last_day: date
    now: datetime
    cache_key: str


async def slots_request(
    db: Database, service_id: UUID, first_day: date, last_day: date
) -> SlotsRequest:
    if last_day < first_day:
        raise Unprocessable("`from` must not be after `to`.")
    if (last_day - first_day).days + 1 > MAX_RANGE_DAYS:
        raise Unprocessable(f"The range may span at most {MAX_RANGE_DAYS} days.")
    now = _engine_now()
    # The version is read before the answer is computed: an answer computed from a snapshot
    # older than a change is stored under the version that change has since replaced. The
    # database bumps it in every writer's transaction, so it is current once a change answered.
    version = await repo.availability_version(db, service_id)
    key = f"{_slots_namespace(service_id)}:{version}:{first_day}:{last_day}:{now:%Y%m%d%H%M}"
    return SlotsRequest(service_id, first_day, last_day, now, key)


async def cached_slots_json(cache: Cache, question: SlotsRequest) -> str | None:
    """The cached answer as JSON, served as it is: the hot path touches no database."""
    return await cache.get(question.cache_key)


async def compute_slots_json(conn: Connection, cache: Cache, question: SlotsRequest) -> str:
    row = await active_service(conn, question.service_id)
    zone = ZoneInfo(row["timezone"])
    window = day_window(question.first_day, question.last_day, zone)
    closures = await repo.closures(conn, question.service_id, window.starts_at, window.ends_at)
    busy = await repo.busy_intervals(conn, question.service_id, window.starts_at, window.ends_at)
    computed = available_slots(
        _schedule(row, closures),
        question.first_day,
        question.last_day,
        question.now,
        [Busy(b["starts_at"], b["ends_at"], b["places"]) for b in busy],
    )
    answer = AvailableSlots(
        service_id=question.service_id,
        timezone=row["timezone"],
        slots=[
            SlotOut(
                starts_at=s.starts_at.astimezone(zone),
                ends_at=s.ends_at.astimezone(zone),
                remaining=s.remaining,
            )
            for s in computed
        ],
    ).model_dump_json()
    await cache.set(question.cache_key, answer, SLOTS_CACHE_TTL_SECONDS)
    return answer


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
