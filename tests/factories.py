"""Arrange data directly in the database, as its owner, and mint tokens for it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from slotease.auth.tokens import mint_access_token
from slotease.kit import crypto
from tests.conftest import TEST_JWT_SECRET

Owner = psycopg.Connection[Any]


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def seal(field: str, row_id: object, value: str) -> bytes:
    """`value` as the application stores it in the column of `field` (kit.crypto)."""
    return crypto.encrypt(value, context=crypto.field_context(field, row_id))


def unseal(field: str, row_id: object, blob: bytes) -> str:
    return crypto.decrypt(blob, context=crypto.field_context(field, row_id))


def make_user(owner: Owner, *, name: str = "Test User", super_admin: bool = False) -> User:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    row = owner.execute(
        "insert into auth.users (email, email_confirmed_at) values (%s, now()) returning id",
        (email,),
    ).fetchone()
    assert row is not None
    user_id: uuid.UUID = row[0]
    owner.execute(
        "insert into public.user_profiles (user_id, full_name) values (%s, %s)", (user_id, name)
    )
    if super_admin:
        owner.execute("insert into app.platform_admins (user_id) values (%s)", (user_id,))
    token = mint_access_token(TEST_JWT_SECRET, user_id=user_id, email=email, ttl_seconds=3600)
    return User(id=user_id, email=email, token=token)


def make_organization(
    owner: Owner, admin: User | None = None, *, name: str = "Test Clinic", tz: str = "Europe/Paris"
) -> uuid.UUID:
    slug = f"org-{uuid.uuid4().hex[:10]}"
    row = owner.execute(
        "insert into public.organizations (name, slug, kind, timezone, location)"
        " values (%s, %s, 'clinic', %s, point(2.35, 48.85)) returning id",
        (name, slug, tz),
    ).fetchone()
    assert row is not None
    org_id: uuid.UUID = row[0]
    if admin is not None:
        add_member(owner, org_id, admin, "admin")
    return org_id


def add_member(owner: Owner, org_id: uuid.UUID, user: User, role: str) -> None:
    owner.execute(
        "insert into public.organization_members (organization_id, user_id, role)"
        " values (%s, %s, %s)",
        (org_id, user.id, role),
    )


WEEKDAYS_NINE_TO_FIVE = tuple((day, "09:00", "17:00") for day in range(5))


def make_service(
    owner: Owner,
    org_id: uuid.UUID,
    *,
    name: str = "Consultation",
    duration: int = 30,
    capacity: int = 1,
    hours: tuple[tuple[int, str, str], ...] = WEEKDAYS_NINE_TO_FIVE,
) -> uuid.UUID:
    row = owner.execute(
        "insert into public.services (organization_id, name, duration_minutes, capacity,"
        " slot_interval_minutes) values (%s, %s, %s, %s, %s) returning id",
        (org_id, name, duration, capacity, duration),
    ).fetchone()
    assert row is not None
    service_id: uuid.UUID = row[0]
    for weekday, start, end in hours:
        owner.execute(
            "insert into public.service_working_hours"
            " (organization_id, service_id, weekday, start_time, end_time)"
            " values (%s, %s, %s, %s, %s)",
            (org_id, service_id, weekday, start, end),
        )
    return service_id
