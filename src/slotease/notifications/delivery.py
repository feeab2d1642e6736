"""Delivering notification rows, in the worker: render, respect preferences and quiet hours,
send through the channel's provider behind its circuit breaker, record the outcome, and fall
back to the recipient's next channel when one cannot go out.

Rows are only ever taken from `queued`, so a job that runs again (a retry, or a worker that
died half-way) sends nothing twice that it already recorded as sent."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
from redis.asyncio import Redis

from slotease.appointments import service as appointments
from slotease.config import Settings
from slotease.db.database import SERVICE, Connection, Database
from slotease.db.queries import Row
from slotease.jobs import queues
from slotease.jobs import repository as jobs_repo
from slotease.kit.events import DomainEvent, EventBus
from slotease.notifications import repository as repo
from slotease.notifications.channels.base import (
    Attachment,
    Channel,
    DeliveryError,
    Message,
    Provider,
    Sender,
    SessionProvider,
)
from slotease.notifications.channels.breaker import (
    Breaker,
    BreakerStore,
    CircuitOpen,
    MemoryBreakerStore,
    RedisBreakerStore,
)
from slotease.notifications.channels.registry import build_providers, not_configured_reason
from slotease.notifications.quiet import quiet_until
from slotease.notifications.templates import Rendered, TemplateRefused, Templates
from slotease.privacy.consents import granted

log = logging.getLogger(__name__)

DELIVER_TASK = "notifications.deliver"
# Messages a person is waiting for (a send, a ticket called, a reminder due); bulk sends
# queue behind them.
NOTIFICATIONS_QUEUE = queues.INTERACTIVE
BULK_QUEUE = queues.BULK
TURNED_OFF = "turned off in the recipient's preferences"
NO_CONSENT = "the recipient withdrew consent to this channel"
NO_MARKETING_CONSENT = "the recipient has not consented to bulk messages"
# Templates whose email carries the appointment as an .ics file.
_CALENDAR_TEMPLATES = {"booking_confirmed", "appointment_rescheduled", "appointment_cancelled"}


@dataclass(frozen=True)
class InAppOutcome:
    status: str
    rendered: Rendered | None = None
    error: str | None = None


def settle_in_app(templates: Templates, row: dict[str, Any]) -> InAppOutcome:
    """What becomes of an in-app message: shown at once unless the recipient turned in-app
    messages off or the organization's template is over its limits. Quiet hours do not hold
    it back: it makes no sound."""
    if not row["pref_in_app"]:
        return InAppOutcome("skipped", error=TURNED_OFF)
    try:
        return InAppOutcome("delivered", rendered=render(templates, row))
    except TemplateRefused as exc:
        # A retry would render it again.
        return InAppOutcome("failed", error=str(exc))


def created_event(row: dict[str, Any], rendered: Rendered) -> DomainEvent:
    """The event that shows a delivered in-app message on the recipient's `user:` topic."""
    return DomainEvent(
        "notification.created",
        {
            "id": str(row["id"]),
            "user_id": str(row["user_id"]),
            "subject": rendered.subject,
            "body": rendered.text,
            "created_at": row["created_at"].isoformat(),
        },
    )


def render(templates: Templates, row: dict[str, Any]) -> Rendered:
    if row["template"]:
        organization = row["organization_name"] or "SlotEase"
        # The sender's data fills the template; what the system knows wins over it.
        context = {
            **row["data"].get("context", {}),
            "recipient_name": row["full_name"] or "",
            "organization": organization,
            "organization_name": organization,
        }
        return templates.render(row["template"], row["locale"], context, row["templates"])
    subject = row["subject"] or ""
    text = row["body"] or ""
    return Rendered(subject=subject, text=text, html=templates.wrap(subject, text))


def deliver_args(ids: list[UUID]) -> dict[str, Any]:
    return {"ids": [str(i) for i in ids]}


async def enqueue_delivery(
    conn: Connection,
    ids: list[UUID],
    scheduled_at: datetime | None = None,
    *,
    queue: str = NOTIFICATIONS_QUEUE,
) -> int:
    return await jobs_repo.enqueue(
        conn, DELIVER_TASK, deliver_args(ids), queue=queue, scheduled_at=scheduled_at
    )


# Rows read, delivered and recorded together: one statement reads them, one records them
# (with the jobs that wait for the end of quiet hours), and a worker that dies half-way sends
# at most this many again.
CHUNK_SIZE = 100


@dataclass
class _Chunk:
    """What delivering a chunk decided, written in one transaction when it ends."""

    records: list[Row] = field(default_factory=list)
    # After the records commit: the in-app messages shown on their recipients' topics.
    events: list[DomainEvent] = field(default_factory=list)
    # Held by quiet hours: one delivery job per moment they end.
    later: dict[datetime, list[UUID]] = field(default_factory=dict)
    # Left queued by a transient failure, for the job's next attempt.
    pending: list[UUID] = field(default_factory=list)


class _Senders:
    """The open sessions of a delivery job, one per provider that keeps one (SMTP), opened
    on first use and closed with the job."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack
        self.open: dict[str, Sender] = {}

    async def of(self, provider: Provider) -> Sender:
        if not isinstance(provider, SessionProvider):
            return provider
        if provider.name not in self.open:
            self.open[provider.name] = await self.stack.enter_async_context(provider.session())
        return self.open[provider.name]


@dataclass
class Deliverer:
    db: Database
    providers: dict[Channel, Provider]
    breaker: Breaker
    templates: Templates
    # Shows a delivered in-app message at once (the realtime subscriber), after its commit.
    events: EventBus

    async def deliver(
        self, ids: list[UUID], *, last_attempt: bool, queue: str = NOTIFICATIONS_QUEUE
    ) -> list[UUID]:
        """Deliver what is still queued; returns the ids a transient failure left queued.
        `queue` is the delivering job's: what waits for the end of quiet hours stays on it."""
        pending: list[UUID] = []
        async with AsyncExitStack() as stack:
            senders = _Senders(stack)
            for start in range(0, len(ids), CHUNK_SIZE):
                chunk = _Chunk()
                async with self.db.transaction(SERVICE) as conn:
                    rows = await repo.for_delivery(conn, ids[start : start + CHUNK_SIZE])
                for row in rows:
                    if row["status"] == "queued":
                        await self._deliver_row(
                            row, chunk, senders, last_attempt=last_attempt, queue=queue
                        )
                async with self.db.transaction(SERVICE) as conn:
                    await self._write(conn, chunk, queue)
                for event in chunk.events:
                    await self.events.publish(event)
                pending += chunk.pending
        return pending

    async def _write(self, conn: Connection, chunk: _Chunk, queue: str) -> None:
        """Record the chunk's outcomes so far and enqueue what quiet hours hold back."""
        await repo.record(conn, chunk.records)
        for until, held in chunk.later.items():
            await enqueue_delivery(conn, held, scheduled_at=until, queue=queue)
        chunk.records, chunk.later = [], {}

    async def _deliver_row(
        self,
        row: Row,
        chunk: _Chunk,
        senders: _Senders,
        *,
        last_attempt: bool,
        queue: str,
    ) -> None:
        channel: Channel = row["channel"]
        # Bulk sends (send-bulk) are the organization's news: they need the marketing opt-in.
        if row["data"].get("bulk") and not granted(row["consents"], "marketing"):
            _record(chunk, row, "skipped", error=NO_MARKETING_CONSENT)
            return
        if channel == "in_app":
            outcome = settle_in_app(self.templates, row)
            delivered = outcome.status == "delivered"
            _record(
                chunk,
                row,
                outcome.status,
                rendered=outcome.rendered,
                provider="in_app" if delivered else None,
                error=outcome.error,
            )
            if delivered and outcome.rendered is not None:
                chunk.events.append(created_event(row, outcome.rendered))
            return
        if not row[f"pref_{channel}"]:
            _record(chunk, row, "skipped", error=TURNED_OFF)
            return
        if not granted(row["consents"], channel):
            _record(chunk, row, "skipped", error=NO_CONSENT)
            return
        if not row["data"].get("urgent"):
            until = quiet_until(row["quiet_hours"], datetime.now(UTC))
            if until is not None:
                chunk.later.setdefault(until, []).append(row["id"])
                return
        try:
            rendered = render(self.templates, row)
        except TemplateRefused as exc:
            # The organization's template is over its limits: a retry would render it again.
            _record(chunk, row, "failed", error=str(exc))
            return
        provider = self.providers.get(channel)
        address = _address(row)
        if provider is None or address is None:
            reason = not_configured_reason(channel) if provider is None else f"no {channel} address"
            _record(chunk, row, "skipped", rendered=rendered, error=reason)
            await self._fall_back(
                row, rendered, chunk, senders, last_attempt=last_attempt, queue=queue
            )
            return
        message = Message(
            to=address,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            data={"notification_id": str(row["id"])},
            attachments=await self._attachments(row) if channel == "email" else (),
        )
        sender = await senders.of(provider)
        try:
            receipt = await self.breaker.call(provider.name, lambda: sender.send(message))
        except DeliveryError as exc:
            give_up = not exc.transient or last_attempt
            if isinstance(exc, CircuitOpen) and self._next_channel(row) is not None:
                give_up = True  # no point waiting for this provider when another can go
            if not give_up:
                _record(chunk, row, "queued", provider=provider.name, error=str(exc))
                chunk.pending.append(row["id"])
                return
            _record(chunk, row, "failed", rendered=rendered, provider=provider.name, error=str(exc))
            await self._fall_back(
                row, rendered, chunk, senders, last_attempt=last_attempt, queue=queue
            )
            return
        _record(
            chunk,
            row,
            "sent",
            rendered=rendered,
            provider=receipt.provider,
            message_id=receipt.message_id,
        )

    async def _attachments(self, row: Row) -> tuple[Attachment, ...]:
        appointment_id = row["data"].get("appointment_id")
        if row["template"] not in _CALENDAR_TEMPLATES or not appointment_id:
            return ()
        async with self.db.transaction(SERVICE) as conn:
            ics = await appointments.calendar_document(conn, UUID(appointment_id))
        if ics is None:
            return ()
        return (Attachment("appointment.ics", "text/calendar", ics),)

    def _next_channel(self, row: Row) -> Channel | None:
        order: list[Channel] = list(row["fallback_order"])
        if row["channel"] not in order:
            return None
        tried = set(row["data"].get("tried", [])) | {row["channel"]}
        for channel in order[order.index(row["channel"]) + 1 :]:
            if (
                channel not in tried
                and row[f"pref_{channel}"]
                and granted(row["consents"], channel)
            ):
                return channel
        return None

    async def _fall_back(
        self,
        row: Row,
        rendered: Rendered,
        chunk: _Chunk,
        senders: _Senders,
        *,
        last_attempt: bool,
        queue: str,
    ) -> None:
        channel = self._next_channel(row)
        if channel is None:
            return
        data = {
            **row["data"],
            "tried": [*row["data"].get("tried", []), row["channel"]],
            "fallback_of": str(row["id"]),
        }
        fallback_id = uuid4()
        async with self.db.transaction(SERVICE) as conn:
            # The failure commits with its fallback: a job that runs again finds the first
            # row settled and does not fall back twice.
            await self._write(conn, chunk, queue)
            await repo.insert_notifications(
                conn,
                [
                    {
                        "id": fallback_id,
                        "organization_id": row["organization_id"],
                        "user_id": row["user_id"],
                        "channel": channel,
                        "template": row["template"],
                        "subject": None if row["template"] else rendered.subject,
                        "body": None if row["template"] else rendered.text,
                        "data": data,
                        "batch_id": row["batch_id"],
                    }
                ],
            )
        log.info("notification %s falls back from %s to %s", row["id"], row["channel"], channel)
        async with self.db.transaction(SERVICE) as conn:
            fallback = await repo.for_delivery(conn, [fallback_id])
        for found in fallback:
            await self._deliver_row(found, chunk, senders, last_attempt=last_attempt, queue=queue)


def _record(
    chunk: _Chunk,
    row: Row,
    status: str,
    *,
    rendered: Rendered | None = None,
    provider: str | None = None,
    message_id: str | None = None,
    error: str | None = None,
) -> None:
    chunk.records.append(
        {
            "id": row["id"],
            "status": status,
            "subject": rendered.subject if rendered else None,
            "body": rendered.text if rendered else None,
            "provider": provider,
            "provider_message_id": message_id,
            "last_error": error,
            "attempted": provider is not None and provider != "in_app",
        }
    )


def build_deliverer(
    settings: Settings, db: Database, http: httpx.AsyncClient, events: EventBus, redis: Redis | None
) -> Deliverer:
    """The worker's deliverer: its breakers shared through Redis when there is one, so every
    worker process holds off a failing provider together."""
    store: BreakerStore = RedisBreakerStore(redis) if redis is not None else MemoryBreakerStore()
    return Deliverer(
        db=db,
        providers=build_providers(settings, http),
        breaker=Breaker(
            store, threshold=settings.breaker_failures, cooldown=settings.breaker_cooldown_seconds
        ),
        templates=Templates(),
        events=events,
    )


def _address(row: dict[str, Any]) -> str | None:
    channel: Channel = row["channel"]
    if channel == "email":
        return str(row["email"]) if row["email"] else None
    if channel == "sms":
        return str(row["phone"]).replace(" ", "") if row["phone"] else None
    if channel == "push":
        return str(row["push_token"]) if row["push_token"] else None
    return None
