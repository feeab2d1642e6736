"""The catalogue of domain events: every name, the payload it carries (as JSON, the way
subscribers receive it), and whether organizations may subscribe a webhook to it.

A new event is added here first: mypy then accepts it at `DomainEvent(...)`, the bus's
guard accepts it at run time, and the webhooks offer it if it is marked so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast, get_args, get_type_hints


class AppointmentPayload(TypedDict):
    """An appointment as the API shows it (appointments.schemas.Appointment)."""

    id: str
    organization_id: str
    service_id: str
    customer_id: str
    starts_at: str
    ends_at: str
    status: str
    notes: str | None


class TicketPayload(TypedDict):
    id: str
    queue_id: str
    organization_id: str
    user_id: str | None
    number: str
    status: str
    counter: str | None
    priority: int
    position: int | None
    estimated_wait_minutes: int | None


class TicketPositionPayload(TypedDict):
    id: str
    queue_id: str
    organization_id: str
    user_id: str | None
    position: int
    estimated_wait_minutes: int | None


class QueueUpdatedPayload(TypedDict):
    queue_id: str
    organization_id: str
    waiting_count: int
    now_serving: list[dict[str, Any]]


class QueueMovedPayload(TypedDict):
    """The line moved: the waiting tickets now at positions `first_moved` to `last_moved`
    (1 is next, both included) stand elsewhere than before the change. One event per change
    whatever the line's length; the realtime hub turns it into `ticket.position` for the
    tickets someone follows."""

    queue_id: str
    organization_id: str
    waiting_count: int
    first_moved: int
    last_moved: int


class WaitlistOfferPayload(TypedDict):
    """An offer the database made (app.offer_waitlist_places), as it reports it."""

    id: str
    organization_id: str
    service_id: str
    user_id: str
    starts_at: str
    offer_expires_at: str


class NotificationCreatedPayload(TypedDict):
    id: str
    user_id: str
    subject: str | None
    body: str
    created_at: str


AppointmentEventName = Literal[
    "appointment.created",
    "appointment.rescheduled",
    "appointment.cancelled",
    "appointment.status_changed",
]
TicketEventName = Literal[
    "ticket.created",
    "ticket.called",
    "ticket.serving",
    "ticket.served",
    "ticket.no_show",
    "ticket.cancelled",
    "ticket.moved",
]
EventName = Literal[
    AppointmentEventName,
    TicketEventName,
    "ticket.position",
    "queue.updated",
    "queue.moved",
    "waitlist.offered",
    "notification.created",
]


@dataclass(frozen=True)
class EventType:
    payload: type
    # Whether an organization may subscribe a webhook: only events the API emits inside a
    # request's transaction with the organization's id in their payload.
    webhook: bool


EVENTS: dict[EventName, EventType] = {
    **{
        name: EventType(AppointmentPayload, webhook=True) for name in get_args(AppointmentEventName)
    },
    **{name: EventType(TicketPayload, webhook=True) for name in get_args(TicketEventName)},
    # One call-next moves every waiting ticket: a live signal the realtime hub publishes on
    # the followed `ticket:<id>` topics only, never through the bus.
    "ticket.position": EventType(TicketPositionPayload, webhook=False),
    "queue.updated": EventType(QueueUpdatedPayload, webhook=True),
    # What the line's positions became, for the hub and the queue alert; `queue.updated`
    # already carries what an organization's webhook needs of the line.
    "queue.moved": EventType(QueueMovedPayload, webhook=False),
    "waitlist.offered": EventType(WaitlistOfferPayload, webhook=True),
    # Emitted by the worker for one recipient's in-app message, with no organization.
    "notification.created": EventType(NotificationCreatedPayload, webhook=False),
}
APPOINTMENT_EVENTS: frozenset[EventName] = frozenset(get_args(AppointmentEventName))
TICKET_EVENTS: frozenset[EventName] = frozenset(get_args(TicketEventName))
WEBHOOK_EVENTS: tuple[EventName, ...] = tuple(name for name, t in EVENTS.items() if t.webhook)
# Every field of a payload type is required (the TypedDicts are total).
_FIELDS = {name: frozenset(get_type_hints(t.payload)) for name, t in EVENTS.items()}


def event_name(text: str) -> EventName:
    """`text` as an event name, read back from where types do not reach (a job's arguments)."""
    if text not in EVENTS:
        raise ValueError(f"{text!r} is not a domain event (see kit.eventtypes.EVENTS)")
    return text


def check_event(name: str, payload: dict[str, Any]) -> None:
    """The run-time guard behind the types: an event the catalogue does not know, or a
    payload missing a field its type requires, is a bug where it is emitted."""
    fields = _FIELDS.get(cast(EventName, name))
    if fields is None:
        raise ValueError(f"{name!r} is not a domain event (see kit.eventtypes.EVENTS)")
    missing = fields - payload.keys()
    if missing:
        raise ValueError(f"the {name} payload lacks {', '.join(sorted(missing))}")
