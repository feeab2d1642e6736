"""Request and response bodies of webhooks and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from slotease.kit.eventtypes import WEBHOOK_EVENTS, EventName

# The domain events an organization may subscribe to, as the catalogue marks them; a Literal
# at run time so that the API validates and documents the values.
if TYPE_CHECKING:
    WebhookEvent = EventName
else:
    WebhookEvent = Literal[WEBHOOK_EVENTS]

Url = Annotated[str, Field(min_length=1, max_length=2000)]
DeliveryStatus = Literal["pending", "delivered", "failed"]


def _distinct(events: list[WebhookEvent]) -> list[WebhookEvent]:
    return list(dict.fromkeys(events))


Events = Annotated[
    list[WebhookEvent], Field(min_length=1, max_length=50), AfterValidator(_distinct)
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookCreate(_Input):
    url: Url
    events: Events


class WebhookUpdate(_Input):
    url: Url | None = None
    events: Events | None = None
    is_active: bool | None = None


class WebhookOut(BaseModel):
    id: UUID
    organization_id: UUID
    url: str
    events: list[str]
    is_active: bool
    consecutive_failures: int
    disabled_at: datetime | None
    # Until then the secret replaced by the last rotation still signs deliveries too.
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret, shown only in this answer.")


class SecretRotated(BaseModel):
    id: UUID
    secret: str = Field(description="The new signing secret, shown only in this answer.")
    previous_secret_expires_at: datetime | None


class Delivery(BaseModel):
    id: UUID
    webhook_id: UUID
    event: str
    status: DeliveryStatus
    attempts: int
    response_code: int | None
    latency_ms: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
