"""Pydantic models of queues and tickets, in and out."""

from __future__ import annotations

from datetime import date
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

TicketStatus = Literal["waiting", "called", "serving", "served", "no_show", "cancelled"]
TicketAction = Literal[
    "call", "start", "complete", "no_show", "cancel", "requeue", "transfer", "set_priority"
]
PRIORITY_HELP = "Higher is served first; staff only."
COUNTER_HELP = "The desk or room that calls."


class CheckInWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: int = Field(default=30, ge=0, le=1440, description="Minutes before the booked time.")
    after: int = Field(default=15, ge=0, le=1440, description="Minutes after the booked time.")


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_minutes: int = Field(
        default=5, ge=1, le=240, description="A called ticket not started by then is a no-show."
    )
    requeue_no_show: bool = Field(
        default=True, description="Put grace-period no-shows back at the end of the line."
    )
    check_in_window_minutes: CheckInWindow = Field(default_factory=CheckInWindow)


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    prefix: str = Field(pattern=r"^[A-Z]{1,3}$", description="1 to 3 uppercase letters.")
    service_id: UUID | None = None
    settings: QueueSettings = Field(default_factory=QueueSettings)


class Queue(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    prefix: str
    service_id: UUID | None
    settings: QueueSettings
    is_active: bool


class NowServing(BaseModel):
    number: str
    counter: str | None


class LineTicket(BaseModel):
    """A ticket as the organization's staff see it in the line."""

    id: UUID
    number: str
    status: TicketStatus
    priority: int
    counter: str | None
    user_id: UUID | None
    position: int | None


class QueueState(BaseModel):
    id: UUID
    name: str
    prefix: str
    waiting_count: int
    now_serving: list[NowServing]
    average_service_minutes: float | None
    estimate_error_minutes: float | None
    tickets: list[LineTicket] | None = Field(
        default=None, description="Staff of the organization only: waiting and active tickets."
    )


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(default=0, ge=0, le=9, description=PRIORITY_HELP)
    user_id: UUID | None = Field(
        default=None, description="Staff: the customer the ticket is for; none for a walk-in."
    )
    appointment_id: UUID | None = Field(
        default=None, description="Check in this booked appointment: it joins at its time."
    )


class Ticket(BaseModel):
    id: UUID
    queue_id: UUID
    organization_id: UUID
    user_id: UUID | None
    number: str
    service_date: date
    status: TicketStatus
    priority: int
    counter: str | None
    appointment_id: UUID | None
    position: int | None
    estimated_wait_minutes: int | None


class TicketPosition(BaseModel):
    """Where a waiting ticket stands now: the `ticket.position` event's payload."""

    id: UUID
    queue_id: UUID
    organization_id: UUID
    user_id: UUID | None
    position: int
    estimated_wait_minutes: int


class CallNext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    counter: str = Field(min_length=1, max_length=64, description=COUNTER_HELP)


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: UUID
    action: TicketAction
    counter: str | None = Field(default=None, min_length=1, max_length=64, description=COUNTER_HELP)
    target_queue_id: UUID | None = None
    priority: int | None = Field(default=None, ge=0, le=9, description=PRIORITY_HELP)

    @model_validator(mode="after")
    def _required_by_action(self) -> TicketUpdate:
        needed = {"transfer": "target_queue_id", "set_priority": "priority"}
        field = needed.get(self.action)
        if field is not None and getattr(self, field) is None:
            raise ValueError(f"'{self.action}' needs '{field}'")
        return self
