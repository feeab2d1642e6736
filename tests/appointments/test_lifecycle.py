from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import psycopg
import pytest

from slotease.kit.events import DomainEvent, EventBus
from tests.appointments.arrange import Clinic, book, count_active, make_clinic, max_overlap, soon
from tests.factories import Owner, User, make_user

pytestmark = pytest.mark.anyio

STATUSES = ["booked", "checked_in", "in_service", "completed", "cancelled", "no_show"]
ALLOWED = {
    ("booked", "checked_in"),
    ("checked_in", "in_service"),
    ("in_service", "completed"),
    ("booked", "cancelled"),
    ("booked", "no_show"),
    ("checked_in", "no_show"),
}
FORBIDDEN = [
    (old, new)
    for old, new in itertools.product(STATUSES, STATUSES)
    if old != new and (old, new) not in ALLOWED
]


async def _booked(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic, hh_mm: str = "10:00"
) -> tuple[User, dict[str, Any]]:
    customer = make_user(owner)
    response = await book(client, customer, clinic, clinic.at(soon(clinic), hh_mm))
    assert response.status_code == 201
    return customer, response.json()


def _status(owner: Owner, appointment_id: str) -> str:
    row = owner.execute(
        "select status from public.appointments where id = %s", (appointment_id,)
    ).fetchone()
    assert row is not None
    return str(row[0])


async def test_only_the_customer_and_staff_see_an_appointment(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer, appointment = await _booked(client, owner, clinic)
    path = f"/v1/appointments/{appointment['id']}"

    assert (await client.get(path, headers=customer.headers)).json() == appointment
    assert (await client.get(path, headers=clinic.staff.headers)).status_code == 200
    assert (await client.get(path, headers=make_user(owner).headers)).status_code == 404
    assert (await client.get(path)).status_code == 401


async def test_lists_are_filtered_and_paged(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner, capacity=10)
    customer = make_user(owner)
    day = soon(clinic)
    for hh_mm in ["09:00", "10:00", "11:00", "12:00", "13:00"]:
        assert (await book(client, customer, clinic, clinic.at(day, hh_mm))).status_code == 201
    await _booked(client, owner, clinic, "14:00")  # someone else's

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/v1/appointments", params=params, headers=customer.headers)
        ).json()
        seen += [item["starts_at"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [
        clinic.at(day, t).isoformat() for t in ["09:00", "10:00", "11:00", "12:00", "13:00"]
    ]

    staff_view = await client.get(
        "/v1/appointments",
        params={"organization_id": str(clinic.org_id), "from": str(day), "to": str(day)},
        headers=clinic.staff.headers,
    )
    assert len(staff_view.json()["items"]) == 6
    other_day = await client.get(
        "/v1/appointments",
        params={"organization_id": str(clinic.org_id), "from": str(day.replace(year=day.year + 1))},
        headers=clinic.staff.headers,
    )
    assert other_day.json()["items"] == []
    cancelled = await client.get(
        "/v1/appointments", params={"status": "cancelled"}, headers=customer.headers
    )
    assert cancelled.json()["items"] == []
    for params in [
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"cursor": "garbage"},
        {"limit": "0"},
    ]:
        bad = await client.get("/v1/appointments", params=params, headers=customer.headers)
        assert bad.status_code == 422, params


async def test_rescheduling_moves_the_place_atomically(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer, appointment = await _booked(client, owner, clinic, "10:00")
    _, blocker = await _booked(client, owner, clinic, "11:00")
    day = soon(clinic)
    path = f"/v1/appointments/{appointment['id']}"

    onto_full = await client.put(
        path, json={"starts_at": clinic.at(day, "11:00").isoformat()}, headers=customer.headers
    )
    off_grid = await client.put(
        path, json={"starts_at": clinic.at(day, "11:10").isoformat()}, headers=customer.headers
    )
    assert onto_full.status_code == 409
    assert off_grid.status_code == 409
    assert (await client.get(path, headers=customer.headers)).json() == appointment

    moved = await client.put(
        path,
        json={"starts_at": clinic.at(day, "12:00").isoformat(), "notes": "later please"},
        headers=customer.headers,
    )
    assert moved.status_code == 200
    assert moved.json()["starts_at"] == clinic.at(day, "12:00").isoformat()
    assert moved.json()["notes"] == "later please"
    # The old place is free again.
    assert (
        await book(client, make_user(owner), clinic, clinic.at(day, "10:00"))
    ).status_code == 201
    assert blocker["status"] == "booked"


@pytest.mark.parametrize(("old", "new"), FORBIDDEN, ids=[f"{o}->{n}" for o, n in FORBIDDEN])
async def test_forbidden_status_changes_are_conflicts(
    client: httpx.AsyncClient, owner: Owner, old: str, new: str
) -> None:
    clinic = make_clinic(owner)
    _, appointment = await _booked(client, owner, clinic)
    owner.execute(
        "update public.appointments set status = %s where id = %s", (old, appointment["id"])
    ) if old == "booked" else _walk_to(owner, appointment["id"], old)

    response = await client.put(
        f"/v1/appointments/{appointment['id']}", json={"status": new}, headers=clinic.staff.headers
    )

    assert response.status_code == 409, response.text
    assert _status(owner, appointment["id"]) == old
    with pytest.raises(psycopg.Error) as refused:
        owner.execute(
            "update public.appointments set status = %s where id = %s", (new, appointment["id"])
        )
    assert refused.value.sqlstate == "SESTA"


def _walk_to(owner: Owner, appointment_id: str, target: str) -> None:
    path = {
        "checked_in": ["checked_in"],
        "in_service": ["checked_in", "in_service"],
        "completed": ["checked_in", "in_service", "completed"],
        "cancelled": ["cancelled"],
        "no_show": ["no_show"],
    }[target]
    for status in path:
        owner.execute(
            "update public.appointments set status = %s where id = %s", (status, appointment_id)
        )


async def test_staff_run_the_allowed_path_and_customers_may_only_cancel(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer, appointment = await _booked(client, owner, clinic)
    path = f"/v1/appointments/{appointment['id']}"

    by_customer = await client.put(path, json={"status": "checked_in"}, headers=customer.headers)
    assert by_customer.status_code == 403
    assert _status(owner, appointment["id"]) == "booked"
    for status in ["checked_in", "in_service", "completed"]:
        step = await client.put(path, json={"status": status}, headers=clinic.staff.headers)
        assert step.status_code == 200
        assert step.json()["status"] == status
    moved = await client.put(
        path,
        json={"starts_at": clinic.at(soon(clinic), "15:00").isoformat()},
        headers=customer.headers,
    )
    assert moved.status_code == 409
    assert (await client.delete(path, headers=customer.headers)).status_code == 409


async def test_cancelling_frees_the_place(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    customer, appointment = await _booked(client, owner, clinic, "13:00")

    cancelled = await client.delete(
        f"/v1/appointments/{appointment['id']}", headers=customer.headers
    )

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    cancelled_at = owner.execute(
        "select cancelled_at from public.appointments where id = %s", (appointment["id"],)
    ).fetchone()
    assert cancelled_at is not None
    assert cancelled_at[0] is not None
    again = await book(client, make_user(owner), clinic, clinic.at(soon(clinic), "13:00"))
    assert again.status_code == 201
    stranger = await client.delete(
        f"/v1/appointments/{again.json()['id']}", headers=make_user(owner).headers
    )
    assert stranger.status_code == 404


async def test_feedback_once_after_completion_and_ratings(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=3)
    customer, appointment = await _booked(client, owner, clinic)
    path = f"/v1/appointments/{appointment['id']}/feedback"

    early = await client.post(path, json={"rating": 5}, headers=customer.headers)
    assert early.status_code == 409
    _walk_to(owner, appointment["id"], "completed")
    assert (
        await client.post(path, json={"rating": 6}, headers=customer.headers)
    ).status_code == 422
    by_staff = await client.post(path, json={"rating": 1}, headers=clinic.staff.headers)
    assert by_staff.status_code == 403
    given = await client.post(path, json={"rating": 4, "comment": "kind"}, headers=customer.headers)
    assert given.status_code == 201
    assert given.json()["rating"] == 4
    twice = await client.post(path, json={"rating": 5}, headers=customer.headers)
    assert twice.status_code == 409

    ratings = await client.get(f"/v1/services/{clinic.service_id}/ratings")
    assert ratings.json() == {
        "service_id": str(clinic.service_id),
        "count": 1,
        "average": 4.0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    }


async def test_events_follow_the_commit_only(
    client: httpx.AsyncClient, owner: Owner, bus: EventBus
) -> None:
    clinic = make_clinic(owner)
    received: list[DomainEvent] = []

    async def record(event: DomainEvent) -> None:
        received.append(event)

    unsubscribe = bus.subscribe(record)
    try:
        customer, appointment = await _booked(client, owner, clinic, "09:00")
        refused = await book(client, make_user(owner), clinic, clinic.at(soon(clinic), "09:00"))
        path = f"/v1/appointments/{appointment['id']}"
        await client.put(
            path,
            json={"starts_at": clinic.at(soon(clinic), "09:30").isoformat()},
            headers=customer.headers,
        )
        await client.put(path, json={"status": "checked_in"}, headers=clinic.staff.headers)
        await client.put(path, json={"status": "completed"}, headers=clinic.staff.headers)
    finally:
        unsubscribe()

    assert refused.status_code == 409
    assert [e.name for e in received] == [
        "appointment.created",
        "appointment.rescheduled",
        "appointment.status_changed",
    ]
    assert received[0].payload == appointment
    assert received[2].payload["status"] == "checked_in"


async def test_concurrent_moves_and_cancellations_keep_capacity(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=2, buffer_minutes=10)
    day = soon(clinic)
    times = ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00"]
    booked: list[tuple[User, str]] = []
    for hh_mm in times:
        for _ in range(2):
            customer, appointment = await _booked(client, owner, clinic, hh_mm)
            booked.append((customer, appointment["id"]))

    async def move(customer: User, appointment_id: str, index: int) -> int:
        target = clinic.at(day, times[index % len(times)].replace(":00", ":30"))
        if index % 3 == 0:
            response = await client.delete(
                f"/v1/appointments/{appointment_id}", headers=customer.headers
            )
        else:
            response = await client.put(
                f"/v1/appointments/{appointment_id}",
                json={"starts_at": target.isoformat()},
                headers=customer.headers,
            )
        return response.status_code

    statuses = await asyncio.gather(
        *(move(customer, appointment_id, i) for i, (customer, appointment_id) in enumerate(booked))
    )

    assert set(statuses) <= {200, 409}
    assert max_overlap(owner, clinic.service_id) <= 2
    assert count_active(owner, clinic.service_id) == 12 - statuses[::3].count(200)


async def test_a_move_into_another_month_keeps_one_row(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer, appointment = await _booked(client, owner, clinic, "10:00")
    later = clinic.at(soon(clinic, 40), "10:00")  # another monthly partition

    moved = await client.put(
        f"/v1/appointments/{appointment['id']}",
        json={"starts_at": later.isoformat()},
        headers=customer.headers,
    )

    assert moved.status_code == 200
    rows = owner.execute(
        "select starts_at from public.appointments where id = %s", (appointment["id"],)
    ).fetchall()
    assert rows == [(later,)]
    assert count_active(owner, clinic.service_id) == 1
