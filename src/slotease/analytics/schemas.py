"""Analytics payloads in and out."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator, model_validator

MAX_PROPERTIES_BYTES = 8 * 1024
MAX_PROPERTIES_KEYS = 50
MAX_REPORT_DAYS = 366

Metric = Literal[
    "appointments", "completed", "cancellations", "no_shows", "tickets_served", "avg_wait_minutes"
]
ReportKind = Literal["appointments", "queues", "feedback"]
ReportFormat = Literal["csv", "json", "pdf"]


class EventCreate(BaseModel):
    event_type: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$", examples=["page.view"])
    organization_id: UUID | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("properties")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_PROPERTIES_KEYS:
            raise ValueError(f"at most {MAX_PROPERTIES_KEYS} properties")
        if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties must be at most {MAX_PROPERTIES_BYTES} bytes of JSON")
        return value


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class Dashboard(BaseModel):
    date: date
    appointments_total: int
    completed: int
    cancelled: int
    no_shows: int
    waiting_now: int
    avg_wait_minutes: float | None
    avg_service_minutes: float | None
    utilization: float | None = Field(
        description="Booked minutes over the capacity-minutes the services offer that day."
    )
    rating_avg: float | None
    source: Literal["live", "history"] = Field(
        description="`live` reads the tables; `history` reads the hourly-refreshed views."
    )


class ServiceFigures(BaseModel):
    service_id: UUID
    name: str | None
    appointments: int
    completed: int
    cancelled: int
    no_shows: int
    booked_minutes: float
    rating_avg: float | None


class StaffFigures(BaseModel):
    user_id: UUID
    full_name: str | None
    appointments_checked_in: int
    appointments_completed: int
    appointments_no_show: int
    tickets_called: int
    tickets_served: int
    tickets_no_show: int
    avg_service_minutes: float | None


class Performance(BaseModel):
    organization_id: UUID
    from_date: date = Field(serialization_alias="from")
    to_date: date = Field(serialization_alias="to")
    services: list[ServiceFigures]
    staff: list[StaffFigures]


class SeriesPoint(BaseModel):
    date: date
    value: float | None


class ForecastPoint(BaseModel):
    date: date
    value: float
    lower: float
    upper: float


class Trends(BaseModel):
    metric: Metric
    series: list[SeriesPoint]
    forecast: list[ForecastPoint]


class ReportCreate(BaseModel):
    organization_id: UUID
    kind: ReportKind
    from_date: date = Field(alias="from")
    to_date: date = Field(alias="to")
    format: ReportFormat

    @model_validator(mode="after")
    def _range(self) -> ReportCreate:
        if self.from_date > self.to_date:
            raise ValueError("`from` must not be after `to`")
        if (self.to_date - self.from_date).days >= MAX_REPORT_DAYS:
            raise ValueError(f"a report covers at most {MAX_REPORT_DAYS} days")
        return self


class ReportAccepted(BaseModel):
    report_id: UUID
    status: str


class Report(BaseModel):
    id: UUID
    organization_id: UUID
    kind: ReportKind
    format: ReportFormat
    from_date: date = Field(serialization_alias="from")
    to_date: date = Field(serialization_alias="to")
    status: Literal["pending", "ready", "failed"]
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None
