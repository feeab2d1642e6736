"""Notification payloads in and out."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ChannelName = Literal["email", "sms", "push", "in_app"]
ExternalChannel = Literal["push", "sms", "email"]


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(pattern=r"^\d{2}:\d{2}$", examples=["22:00"])
    end: str = Field(pattern=r"^\d{2}:\d{2}$", examples=["07:00"])
    timezone: str = Field(examples=["Europe/Paris"])

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        time.fromisoformat(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA timezone such as Europe/Paris") from None
        return value


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: bool = True
    sms: bool = True
    push: bool = True
    in_app: bool = True
    quiet_hours: QuietHours | None = None
    fallback_order: list[ExternalChannel] = Field(default=["push", "sms", "email"], max_length=3)
    push_token: str | None = Field(default=None, max_length=4096)

    @field_validator("fallback_order")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each channel may appear once")
        return value


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UUID
    channels: list[ChannelName] = Field(min_length=1, max_length=4)
    template: str | None = Field(default=None, max_length=100)
    subject: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, max_length=10_000)
    data: dict[str, Any] = Field(default_factory=dict)
    organization_id: UUID | None = None
    urgent: bool = False

    @model_validator(mode="after")
    def _content(self) -> SendRequest:
        if self.template is None and not self.body:
            raise ValueError("give a template or a body")
        return self


class Sent(BaseModel):
    id: UUID
    status: Literal["queued"] = "queued"
    notifications: list[dict[str, Any]]


class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: date
    service_id: UUID | None = None


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization_id: UUID
    user_ids: list[UUID] | None = Field(default=None, max_length=100_000)
    audience: Audience | None = None
    channels: list[ChannelName] = Field(min_length=1, max_length=4)
    subject: str = Field(max_length=300)
    body: str = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _one_target(self) -> BulkRequest:
        if (self.user_ids is None) == (self.audience is None):
            raise ValueError("give either user_ids or an audience")
        return self


class BulkSent(BaseModel):
    batch_id: UUID
    count: int


class Notification(BaseModel):
    id: UUID
    channel: ChannelName
    subject: str | None
    body: str | None
    status: str
    read_at: datetime | None
    created_at: datetime


class Read(BaseModel):
    id: UUID
    read_at: datetime
