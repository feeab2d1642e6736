"""A fixed data set with hand-computed figures: organization A has, on a past Monday `day`,
five appointments and three tickets; organization B is the other tenant."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from slotease.config import Settings
from slotease.db.database import Database
from slotease.db.pools import worker_database
from tests.factories import Owner, User, add_member, make_organization, make_service, make_user
from tests.notifications.support import run_jobs, worker_app

ZONE = ZoneInfo("Europe/Paris")


@dataclass(frozen=True)
class Tenants:
    org_a: uuid.UUID
    org_b: uuid.UUID
    admin_a: User
    staff_a: User
    admin_b: User
    customer: User
    consult: uuid.UUID  # capacity 5, 30 minutes, Monday-Friday 09:00-17:00
    xray: uuid.UUID  # capacity 1, 60 minutes, Monday-Friday 09:00-12:00
    queue: uuid.UUID
    day: date  # a Monday two weeks ago


def acting(owner: Owner, user: User) -> None:
    """Make the owner's next statements look like `user`'s to auth.uid() (the event actor)."""
    claims = json.dumps({"sub": str(user.id), "role": "authenticated"})
    owner.execute("select set_config('request.jwt.claims', %s, false)", (claims,))


def _appointment(
    owner: Owner, t: Tenants, service: uuid.UUID, at: datetime, minutes: int, notes: str = ""
) -> uuid.UUID:
    row = owner.execute(
        "insert into public.appointments"
        " (organization_id, service_id, customer_id, starts_at, ends_at, notes)"
        " values (%s, %s, %s, %s, %s, %s) returning id",
        (t.org_a, service, t.customer.id, at, at + timedelta(minutes=minutes), notes or None),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _status(owner: Owner, appointment: uuid.UUID, *statuses: str) -> None:
    for status in statuses:
        owner.execute(
            "update public.appointments set status = %s where id = %s", (status, appointment)
        )


def _rate(owner: Owner, t: Tenants, appointment: uuid.UUID, rating: int) -> None:
    owner.execute(
        "insert into public.feedback (organization_id, appointment_id, appointment_starts_at,"
        " service_id, customer_id, rating)"
        " select organization_id, id, starts_at, service_id, customer_id, %s"
        " from public.appointments where id = %s",
        (rating, appointment),
    )


def _ticket(owner: Owner, t: Tenants, number: int, day: date) -> uuid.UUID:
    row = owner.execute(
        "insert into public.tickets (organization_id, queue_id, service_date, number)"
        " values (%s, %s, %s, %s) returning id",
        (t.org_a, t.queue, day, number),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _serve(owner: Owner, ticket: uuid.UUID, wait: float, estimate: int, service: float) -> None:
    for status in ("called", "serving", "served"):
        owner.execute("update public.tickets set status = %s where id = %s", (status, ticket))
    owner.execute(
        "update public.tickets set actual_wait_minutes = %s, estimated_wait_minutes = %s,"
        " finished_at = serving_at + make_interval(secs => %s) where id = %s",
        (wait, estimate, service * 60, ticket),
    )


def arrange(owner: Owner) -> Tenants:
    admin_a, staff_a, admin_b = (
        make_user(owner),
        make_user(owner, name="Sam Staff"),
        make_user(owner),
    )
    customer = make_user(owner)
    org_a = make_organization(owner, admin_a, name="Clinic A")
    org_b = make_organization(owner, admin_b, name="Clinic B")
    add_member(owner, org_a, staff_a, "staff")
    consult = make_service(owner, org_a, name="Consultation", capacity=5)
    xray = make_service(
        owner,
        org_a,
        name="X-ray",
        duration=60,
        hours=tuple((d, "09:00", "12:00") for d in range(5)),
    )
    row = owner.execute(
        "insert into public.queues (organization_id, name, prefix) values (%s, 'Desk', 'D')"
        " returning id",
        (org_a,),
    ).fetchone()
    assert row is not None
    today = datetime.now(ZONE).date()
    monday = today - timedelta(days=today.weekday() + 14)
    t = Tenants(
        org_a, org_b, admin_a, staff_a, admin_b, customer, consult, xray, row[0], monday
    )  # fmt: skip

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(monday, time(hour, minute), tzinfo=ZONE)

    with owner.transaction():
        acting(owner, staff_a)
        completed = [_appointment(owner, t, consult, at(9, 30 * i), 30) for i in range(2)]
        completed.append(_appointment(owner, t, xray, at(10), 60))
        for appointment in completed:
            _status(owner, appointment, "checked_in", "in_service", "completed")
        _status(owner, _appointment(owner, t, consult, at(11), 30), "no_show")
        cancelled = _appointment(owner, t, consult, at(12), 30)
        acting(owner, customer)
        _status(owner, cancelled, "cancelled")
        for appointment, rating in zip(completed, (4, 2, 5), strict=True):
            _rate(owner, t, appointment, rating)
        acting(owner, staff_a)
        _serve(owner, _ticket(owner, t, 1, monday), wait=10, estimate=12, service=6)
        _serve(owner, _ticket(owner, t, 2, monday), wait=20, estimate=15, service=4)
        no_show = _ticket(owner, t, 3, monday)
        owner.execute("update public.tickets set status = 'no_show' where id = %s", (no_show,))
        owner.execute("select set_config('request.jwt.claims', '', false)")
    return t


# The figures of `day`, computed by hand from the arrangement above.
DAY_FIGURES: dict[str, Any] = {
    "appointments_total": 5,
    "completed": 3,
    "cancelled": 1,
    "no_shows": 1,
    "waiting_now": 0,
    "avg_wait_minutes": 15.0,
    "avg_service_minutes": 5.0,
    # Booked (not cancelled): 3 x 30 + 60 = 150 minutes, of 8 h x 5 + 3 h x 1 = 2580 offered.
    "utilization": round(150 / 2580, 4),
    "rating_avg": round(11 / 3, 2),
    "source": "history",
}


async def service_database(settings: Settings) -> AsyncIterator[Database]:
    database = worker_database(settings, max_size=2)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


async def wait_ready(client: httpx.AsyncClient, report_id: str, headers: dict[str, str]) -> Any:
    for _ in range(100):
        response = await client.get(f"/v1/analytics/report/{report_id}", headers=headers)
        assert response.status_code == 200, response.text
        if response.json()["status"] != "pending":
            return response.json()
        await asyncio.sleep(0.05)
    raise AssertionError("the report was not generated")


async def generated_report(
    client: httpx.AsyncClient, settings: Settings, headers: dict[str, str], body: dict[str, Any]
) -> Any:
    """Request a report, let a worker run its generation, and answer it once it is done."""
    response = await client.post("/v1/analytics/report", json=body, headers=headers)
    assert response.status_code == 202, response.text
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    return await wait_ready(client, response.json()["report_id"], headers)
