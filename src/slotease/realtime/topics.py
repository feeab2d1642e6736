"""Topic names, and which topics each domain event reaches with which part of its payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args
from uuid import UUID

from slotease.kit.events import DomainEvent
from slotease.kit.eventtypes import APPOINTMENT_EVENTS, TICKET_EVENTS

TopicKind = Literal["queue", "ticket", "appointment", "organization", "user"]
TOPIC_KINDS: frozenset[str] = frozenset(get_args(TopicKind))

# What a queue's public board may show of a ticket: anyone, even anonymous, can follow a
# queue, so nothing here may identify the person holding the ticket.
PUBLIC_TICKET_FIELDS = ("number", "status", "counter")


@dataclass(frozen=True)
class Topic:
    kind: TopicKind
    resource_id: UUID

    def __str__(self) -> str:
        return f"{self.kind}:{self.resource_id}"


def parse_topic(text: str) -> Topic | None:
    """The topic named by `text` (`<kind>:<uuid>`), or None when it is malformed."""
    kind, _, raw_id = text.partition(":")
    if kind not in TOPIC_KINDS:
        return None
    try:
        resource_id = UUID(raw_id)
    except ValueError:
        return None
    return Topic(kind, resource_id)  # type: ignore[arg-type]


def route_event(event: DomainEvent) -> list[tuple[str, dict[str, Any]]]:
    """The (topic, payload) pairs `event` is published on; unknown events go nowhere."""
    payload = event.payload
    if event.name in TICKET_EVENTS:
        public = {key: payload.get(key) for key in PUBLIC_TICKET_FIELDS}
        return [
            (f"ticket:{payload['id']}", payload),
            (f"organization:{payload['organization_id']}", payload),
            (f"queue:{payload['queue_id']}", public),
        ]
    if event.name == "ticket.position":
        return [(f"ticket:{payload['id']}", payload)]
    if event.name == "queue.moved":
        # The public board's and the hub's signal; each ticket's own topic gets its position
        # from the hub (realtime.positions), for the tickets someone follows.
        return [(f"queue:{payload['queue_id']}", payload)]
    if event.name == "queue.updated":
        return [
            (f"queue:{payload['queue_id']}", payload),
            (f"organization:{payload['organization_id']}", payload),
        ]
    if event.name in APPOINTMENT_EVENTS:
        return [
            (f"appointment:{payload['id']}", payload),
            (f"organization:{payload['organization_id']}", payload),
        ]
    if event.name == "notification.created":
        return [(f"user:{payload['user_id']}", payload)]
    return []
