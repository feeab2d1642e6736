"""The domain-event catalogue: the webhooks offer exactly its subscribable events, and the bus
refuses an event it does not list."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import ValidationError

from slotease.app import create_app
from slotease.kit.events import DomainEvent
from slotease.kit.eventtypes import EVENTS, WEBHOOK_EVENTS, EventName, event_name
from slotease.webhooks.schemas import WebhookCreate, WebhookEvent

QUEUE_UPDATED: dict[str, Any] = {
    "queue_id": "q",
    "organization_id": "o",
    "waiting_count": 0,
    "now_serving": [],
}


def test_the_webhook_events_are_the_catalogues_subscribable_subset() -> None:
    subscribable = {name for name, event_type in EVENTS.items() if event_type.webhook}
    assert set(get_args(WebhookEvent)) == set(WEBHOOK_EVENTS) == subscribable
    assert set(EVENTS) - subscribable == {"ticket.position", "queue.moved", "notification.created"}
    schema = create_app().openapi()["components"]["schemas"]["WebhookCreate"]
    assert set(schema["properties"]["events"]["items"]["enum"]) == subscribable


def test_the_catalogue_lists_every_event_name_once() -> None:
    assert set(EVENTS) == set(get_args(EventName))


def test_a_webhook_for_an_event_outside_the_subset_is_refused() -> None:
    with pytest.raises(ValidationError):
        WebhookCreate.model_validate(
            {"url": "https://example.com/h", "events": ["ticket.position"]}
        )
    accepted = WebhookCreate.model_validate(
        {"url": "https://example.com/h", "events": ["queue.updated", "queue.updated"]}
    )
    assert accepted.events == ["queue.updated"]


def test_the_bus_refuses_an_event_name_it_does_not_know() -> None:
    with pytest.raises(ValueError, match=r"'queue\.renamed' is not a domain event"):
        DomainEvent("queue.renamed", QUEUE_UPDATED)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a domain event"):
        event_name("queue.renamed")
    assert DomainEvent(event_name("queue.updated"), QUEUE_UPDATED).name == "queue.updated"


def test_an_event_without_a_field_of_its_payload_type_is_refused() -> None:
    partial = {key: value for key, value in QUEUE_UPDATED.items() if key != "now_serving"}
    with pytest.raises(ValueError, match=r"the queue\.updated payload lacks now_serving"):
        DomainEvent("queue.updated", partial)
