"""Pydantic models of the waitlist, in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from slotease.appointments.schemas import Appointment

WaitlistStatus = Literal["waiting", "offered", "booked", "expired"]


class WaitlistJoin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_id: UUID
    starts_at: AwareDatetime = Field(description="The start of a full slot of the service.")


class WaitlistEntry(BaseModel):
    id: UUID
    organization_id: UUID
    service_id: UUID
    starts_at: datetime
    ends_at: datetime
    status: WaitlistStatus
    position: int | None = Field(description="1 is next in line; null once no longer waiting.")
    offer_expires_at: datetime | None
    appointment_id: UUID | None
    created_at: datetime


class AcceptedOffer(WaitlistEntry):
    appointment: Appointment
