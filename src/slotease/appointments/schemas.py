"""Pydantic models of availability and appointments, in and out."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

AppointmentStatus = Literal[
    "booked", "checked_in", "in_service", "completed", "cancelled", "no_show"
]
Notes = Field(default=None, max_length=2000)


class SlotOut(BaseModel):
    starts_at: datetime
    ends_at: datetime
    remaining: int


class AvailableSlots(BaseModel):
    service_id: UUID
    timezone: str
    slots: list[SlotOut]


class AppointmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_id: UUID
    starts_at: AwareDatetime
    notes: str | None = Notes
    customer_id: UUID | None = Field(
        default=None, description="Staff of the organization may book for a customer."
    )


class AppointmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime | None = None
    notes: str | None = Notes
    status: AppointmentStatus | None = Field(
        default=None, description="Staff only; the allowed changes are in the API contract."
    )


class Appointment(BaseModel):
    id: UUID
    organization_id: UUID
    service_id: UUID
    customer_id: UUID
    starts_at: datetime
    ends_at: datetime
    status: AppointmentStatus
    notes: str | None


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class Feedback(BaseModel):
    id: UUID
    appointment_id: UUID
    service_id: UUID
    rating: int
    comment: str | None
    created_at: datetime


class Ratings(BaseModel):
    service_id: UUID
    count: int
    average: float | None
    distribution: dict[str, int] = Field(description="How many ratings of each star, 1 to 5.")


class AppointmentFilters(BaseModel):
    """Query of `GET /v1/appointments`; dates are local to each appointment's organization."""

    model_config = ConfigDict(populate_by_name=True)

    organization_id: UUID | None = Field(
        default=None, description="Staff: that organization's appointments; else your own."
    )
    service_id: UUID | None = None
    status: AppointmentStatus | None = None
    from_day: date | None = Field(default=None, alias="from")
    to_day: date | None = Field(default=None, alias="to")
    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=50, ge=1, le=200)


class CalendarToken(BaseModel):
    url: str = Field(description="The feed's address, token included, for a calendar app.")
    token: str = Field(description="Shown only here; a new one replaces the old.")
