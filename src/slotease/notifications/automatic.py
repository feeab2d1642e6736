"""Automatic messages: which domain events notify whom, and with what.

Request side (`transactional_handler`): inside the change's transaction, enqueue the job that
will write the message, and keep the appointment's reminder jobs in step. Worker side
(`create_for_event`, `create_reminder`): given ids only, read the facts as service_role and
write the rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from slotease.config import Settings
from slotease.db.database import SERVICE, Connection, Database
from slotease.jobs import repository as jobs_repo
from slotease.jobs.repository import Job
from slotease.kit.events import DomainEvent, TransactionalHandler
from slotease.kit.eventtypes import EventName
from slotease.kit.offsets import parse_offsets
from slotease.notifications import repository as repo
from slotease.notifications.channels.base import EXTERNAL_CHANNELS, Channel
from slotease.notifications.delivery import NOTIFICATIONS_QUEUE
from slotease.queues.service import display_number

NOTIFY_TASK = "notifications.notify_event"
REMIND_TASK = "notifications.remind"
_SOURCE = UUID("6f1c1e55-5a0b-4d8e-9a51-0b9d6c1f2e10")

# event → (template, urgent). Urgent messages ignore quiet hours: they are about now.
_TEMPLATES: dict[EventName, tuple[str, bool]] = {
    "appointment.created": ("booking_confirmed", False),
    "appointment.rescheduled": ("appointment_rescheduled", False),
    "appointment.cancelled": ("appointment_cancelled", False),
    "ticket.called": ("ticket_called", True),
    "ticket.position": ("ticket_position", True),
    "waitlist.offered": ("waitlist_offered", True),
}


def transactional_handler(settings: Settings) -> TransactionalHandler:
    offsets = parse_offsets(settings.reminder_offsets)

    async def handle(conn: Connection, event: DomainEvent) -> None:
        payload = event.payload
        # All of the event's jobs in one statement: a booking sends it while it holds its
        # service's capacity lock (see appointments.service.book).
        jobs: list[Job] = []
        if event.name == "queue.moved":
            jobs.extend(await _position_alert(conn, payload, settings.queue_alert_position))
        elif event.name in _TEMPLATES and _recipient_id(payload) is not None:
            # Only the subject's id: the worker reads every fact of the message again.
            jobs.append(
                Job(
                    NOTIFY_TASK,
                    {"event": event.name, "subject_id": str(payload["id"])},
                    queue=NOTIFICATIONS_QUEUE,
                )
            )
        if event.name.startswith("appointment.") and "starts_at" in payload:
            # A created appointment's id has just been chosen: no reminder of it can wait.
            if event.name != "appointment.created":
                await repo.drop_reminders(conn, UUID(payload["id"]))
            if payload.get("status") == "booked":
                jobs.extend(_reminders(payload, offsets))
        await jobs_repo.enqueue_all(conn, jobs)

    return handle


async def _position_alert(conn: Connection, payload: dict[str, Any], position: int) -> list[Job]:
    """One change moved a range of the line: when the alert position is in it, the ticket now
    standing there has just reached it (one read of the line's first places, not of the line,
    whoever made the change: the worker finds the holder)."""
    if not payload["first_moved"] <= position <= payload["last_moved"]:
        return []
    ticket_id = await repo.ticket_at_position(conn, UUID(payload["queue_id"]), position)
    if ticket_id is None:
        return []
    return [
        Job(
            NOTIFY_TASK,
            {"event": "ticket.position", "subject_id": str(ticket_id)},
            queue=NOTIFICATIONS_QUEUE,
        )
    ]


def _reminders(payload: dict[str, Any], offsets: dict[str, timedelta]) -> list[Job]:
    """The reminder jobs of a booked appointment, those whose time is still ahead."""
    starts_at = datetime.fromisoformat(payload["starts_at"])
    now = datetime.now(UTC)
    return [
        Job(
            REMIND_TASK,
            {"appointment_id": payload["id"], "starts_at": payload["starts_at"], "offset": label},
            queue=NOTIFICATIONS_QUEUE,
            scheduled_at=starts_at - offset,
            queueing_lock=f"reminder:{payload['id']}:{label}",
        )
        for label, offset in offsets.items()
        if starts_at - offset > now
    ]


def _recipient_id(payload: dict[str, Any]) -> str | None:
    value = payload.get("customer_id") or payload.get("user_id")
    return str(value) if value else None


def source_of_job(job_id: int) -> UUID:
    """The batch id of what one job writes: a rerun of the job finds its rows again."""
    return uuid5(_SOURCE, f"job:{job_id}")


@dataclass(frozen=True)
class Plan:
    user_id: UUID
    organization_id: UUID | None
    template: str
    urgent: bool
    context: dict[str, Any]
    appointment_id: UUID | None = None
    in_app: bool = True


async def create_for_event(
    db: Database, settings: Settings, event: EventName, subject_id: UUID, source: UUID
) -> list[UUID]:
    """The messages of `event` about its subject (an appointment, a ticket, a waitlist entry),
    from what the database says now: nothing when the subject is no longer in the state the
    event announced."""
    template, urgent = _TEMPLATES[event]
    async with db.transaction(SERVICE) as conn:
        if event.startswith("appointment."):
            plan = await _appointment_plan(conn, subject_id, template)
        else:
            facts = await _subject_facts(conn, event, subject_id, settings.queue_alert_position)
            plan = None if facts is None else await _plan_from_facts(conn, facts, template, urgent)
        if plan is None:
            return []
        return await _write(conn, plan, source)


async def create_reminder(
    db: Database, appointment_id: UUID, starts_at: datetime, source: UUID
) -> list[UUID]:
    """Nothing when the appointment moved or is no longer booked since the job was set."""
    async with db.transaction(SERVICE) as conn:
        plan = await _appointment_plan(conn, appointment_id, "appointment_reminder")
        facts = await repo.appointment_facts(conn, appointment_id)
        if plan is None or facts is None:
            return []
        if facts["status"] != "booked" or facts["starts_at"] != starts_at:
            return []
        return await _write(conn, plan, source)


async def _appointment_plan(conn: Connection, appointment_id: UUID, template: str) -> Plan | None:
    facts = await repo.appointment_facts(conn, appointment_id)
    if facts is None or facts["customer_id"] is None:
        return None
    return Plan(
        user_id=facts["customer_id"],
        organization_id=facts["organization_id"],
        template=template,
        urgent=False,
        context={
            "service": facts["service"],
            "starts_at": _local(facts["starts_at"], facts["timezone"]),
        },
        appointment_id=facts["id"],
    )


@dataclass(frozen=True)
class SubjectFacts:
    user_id: UUID
    organization_id: UUID
    service_id: UUID | None
    number: str = ""
    counter: str | None = None
    position: int = 0
    starts_at: datetime | None = None
    offer_expires_at: datetime | None = None


async def _subject_facts(
    conn: Connection, event: str, subject_id: UUID, alert_position: int
) -> SubjectFacts | None:
    if event.startswith("waitlist."):
        entry = await repo.waitlist_entry_facts(conn, subject_id)
        if entry is None or entry["status"] != "offered":
            return None
        return SubjectFacts(
            user_id=entry["user_id"],
            organization_id=entry["organization_id"],
            service_id=entry["service_id"],
            starts_at=entry["starts_at"],
            offer_expires_at=entry["offer_expires_at"],
        )
    ticket = await repo.ticket_facts(conn, subject_id)
    if ticket is None or ticket["user_id"] is None:
        return None
    if event == "ticket.called":
        if ticket["status"] != "called":
            return None
    # The alert says the ticket reached the alert position; it may have moved closer since.
    elif ticket["position"] is None or ticket["position"] > alert_position:
        return None
    return SubjectFacts(
        user_id=ticket["user_id"],
        organization_id=ticket["organization_id"],
        service_id=ticket["service_id"],
        number=display_number(ticket["prefix"], ticket["number"]),
        counter=ticket["counter"],
        position=alert_position,
    )


async def _plan_from_facts(
    conn: Connection, facts: SubjectFacts, template: str, urgent: bool
) -> Plan | None:
    organization = await repo.organization_facts(conn, facts.organization_id, facts.service_id)
    if organization is None:
        return None
    context: dict[str, Any] = {
        "service": organization["service"] or "",
        "number": facts.number,
        "counter": facts.counter or "the desk",
        "position": facts.position,
    }
    for key, moment in (("starts_at", facts.starts_at), ("expires_at", facts.offer_expires_at)):
        context[key] = _local(moment, organization["timezone"]) if moment else ""
    # The database writes the offer's in-app row itself, in the transaction that makes it.
    in_app = template != "waitlist_offered"
    return Plan(facts.user_id, facts.organization_id, template, urgent, context, in_app=in_app)


async def _write(conn: Connection, plan: Plan, source: UUID) -> list[UUID]:
    existing = await repo.ids_of_batch(conn, source)
    if existing:
        return [row["id"] for row in existing if row["status"] == "queued"]
    recipient = await repo.recipient(conn, plan.user_id)
    if recipient is None:
        return []
    channels: list[Channel] = ["in_app"] if recipient["in_app"] and plan.in_app else []
    # One outside message, on the first channel the recipient allows; delivery falls back
    # along the same order when it cannot go out.
    first = next(
        (c for c in recipient["fallback_order"] if c in EXTERNAL_CHANNELS and recipient[c]), None
    )
    if first is not None:
        channels.append(first)
    data: dict[str, Any] = {"urgent": plan.urgent, "context": plan.context}
    if plan.appointment_id is not None:
        data["appointment_id"] = str(plan.appointment_id)
    ids = [uuid5(source, channel) for channel in channels]
    rows = [
        {
            "id": notification_id,
            "organization_id": plan.organization_id,
            "user_id": plan.user_id,
            "channel": channel,
            "template": plan.template,
            "subject": None,
            "body": None,
            "data": data,
            "batch_id": source,
        }
        for notification_id, channel in zip(ids, channels, strict=True)
    ]
    await repo.insert_notifications(conn, rows)
    return ids


def _local(moment: datetime, timezone: str | None) -> str:
    zone = ZoneInfo(timezone or "UTC")
    return moment.astimezone(zone).strftime("%A %d %B %Y, %H:%M") + f" ({zone.key})"
