"""Arranging a bookable service and reading appointments back, as the database owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.factories import Owner, User, add_member, make_organization, make_service, make_user

EVERY_DAY = tuple((d, "09:00", "17:00") for d in range(7))


@dataclass(frozen=True)
class Clinic:
    org_id: uuid.UUID
    service_id: uuid.UUID
    admin: User
    staff: User
    zone: ZoneInfo

    def at(self, day: date, hh_mm: str) -> datetime:
        """A local wall-clock time of the clinic, as an aware datetime."""
        return datetime.combine(day, time.fromisoformat(hh_mm), tzinfo=self.zone)


def make_clinic(
    owner: Owner,
    *,
    capacity: int = 1,
    tz: str = "Europe/Paris",
    duration: int = 30,
    **service_fields: Any,
) -> Clinic:
    admin = make_user(owner, name="Admin")
    staff = make_user(owner, name="Staff")
    org_id = make_organization(owner, admin, tz=tz)
    add_member(owner, org_id, staff, "staff")
    service_id = make_service(owner, org_id, duration=duration, capacity=capacity, hours=EVERY_DAY)
    for column, value in service_fields.items():
        owner.execute(
            f"update public.services set {column} = %s where id = %s",
            (value, service_id),
        )
    return Clinic(org_id, service_id, admin, staff, ZoneInfo(tz))


def soon(clinic: Clinic, days: int = 5) -> date:
    return datetime.now(clinic.zone).date() + timedelta(days=days)


def insert_as_owner(owner: Owner, clinic: Clinic, customer: User, starts_at: datetime) -> None:
    """A write that bypasses the API, as psql would."""
    owner.execute(
        "insert into public.appointments"
        " (organization_id, service_id, customer_id, starts_at, ends_at)"
        " values (%s, %s, %s, %s, %s)",
        (
            clinic.org_id,
            clinic.service_id,
            customer.id,
            starts_at,
            starts_at + timedelta(minutes=30),
        ),
    )


def count_active(owner: Owner, service_id: uuid.UUID) -> int:
    row = owner.execute(
        "select count(*) from public.appointments where service_id = %s"
        " and status in ('booked', 'checked_in', 'in_service')",
        (service_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def max_overlap(owner: Owner, service_id: uuid.UUID) -> int:
    """The most active places of a service in use at one instant, buffer included."""
    row = owner.execute(
        "select coalesce(max(n), 0) from ("
        " select (select count(*) from public.appointments b"
        "   where b.service_id = a.service_id and b.status in ('booked','checked_in','in_service')"
        "   and b.starts_at <= a.starts_at"
        "   and b.ends_at + make_interval(mins => s.buffer_minutes) > a.starts_at) n"
        " from public.appointments a join public.services s on s.id = a.service_id"
        " where a.service_id = %s and a.status in ('booked','checked_in','in_service')) x",
        (service_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


async def book(
    client: httpx.AsyncClient, user: User, clinic: Clinic, starts_at: datetime, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/v1/appointments",
        json={"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat(), **extra},
        headers=user.headers,
    )
