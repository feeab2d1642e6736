"""Request and response bodies of the personal-data routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from slotease.privacy.consents import Purpose


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Annotated[str, Field(min_length=1, max_length=256)]
    # A TOTP or recovery code, for accounts with multi-factor authentication on.
    code: Annotated[str | None, Field(min_length=1, max_length=64)] = None


class ErasureAccepted(BaseModel):
    id: UUID
    status: str = Field(default="erasing", description="The erasure runs in the background.")


class Consent(BaseModel):
    granted: bool
    # When and through what the current decision was made; null while the default holds.
    at: datetime | None
    source: str | None


class Consents(BaseModel):
    marketing: Consent
    sms: Consent
    email: Consent
    push: Consent


class ConsentsUpdate(BaseModel):
    """The purposes to decide; those left out keep their current decision."""

    model_config = ConfigDict(extra="forbid")

    marketing: bool | None = None
    sms: bool | None = None
    email: bool | None = None
    push: bool | None = None

    def decisions(self) -> dict[str, bool]:
        return self.model_dump(exclude_none=True)


class ConsentEvent(BaseModel):
    purpose: Purpose
    granted: bool
    source: str
    at: datetime


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_id: UUID | None
    table: str
    operation: str
    row_id: str | None
    changes: dict[str, Any] = Field(
        description="The new row of an insert, the old one of a delete, and `{field: {old, new}}`"
        " of the fields an update changed; secrets and hashes are redacted."
    )
