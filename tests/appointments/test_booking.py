from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.appointments.arrange import (
    book,
    count_active,
    insert_as_owner,
    make_clinic,
    max_overlap,
    soon,
)
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio


async def test_booking_answers_the_contract(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    customer = make_user(owner)
    starts_at = clinic.at(soon(clinic), "10:00")

    response = await book(client, customer, clinic, starts_at, notes="first visit")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "organization_id", "service_id", "customer_id", "starts_at", "ends_at", "status",
        "notes",
    }  # fmt: skip
    assert body["status"] == "booked"
    assert body["customer_id"] == str(customer.id)
    assert body["organization_id"] == str(clinic.org_id)
    assert body["starts_at"] == starts_at.isoformat()
    assert body["ends_at"] == (starts_at + timedelta(minutes=30)).isoformat()
    assert body["notes"] == "first visit"
    booked_by = owner.execute(
        "select booked_by from public.appointments where id = %s", (body["id"],)
    ).fetchone()
    assert booked_by == (customer.id,)


async def test_a_full_slot_is_a_conflict(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    starts_at = clinic.at(soon(clinic), "11:00")
    assert (await book(client, make_user(owner), clinic, starts_at)).status_code == 201

    second = await book(client, make_user(owner), clinic, starts_at)

    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["detail"] == "The slot is full."
    assert count_active(owner, clinic.service_id) == 1


BAD_REQUESTS: list[tuple[str, dict[str, Any], int]] = [
    ("off the grid", {"at": "10:10"}, 409),
    ("before opening", {"at": "08:30"}, 409),
    ("ends after closing", {"at": "16:45"}, 409),
    ("inside a closure", {"at": "14:00"}, 409),
    ("too soon", {"days": 0, "at": "16:30", "notice": True}, 409),
    ("too far ahead", {"days": 70}, 409),
    ("in the past", {"days": -2}, 409),
    ("naive time", {"naive": True}, 422),
    ("unknown field", {"extra": {"price": 1}}, 422),
    ("notes too long", {"extra": {"notes": "x" * 2001}}, 422),
    ("missing service", {"drop": "service_id"}, 422),
    ("not a datetime", {"extra": {"starts_at": "tomorrow"}}, 422),
    ("unknown service", {"extra": {"service_id": str(uuid.uuid4())}}, 404),
    ("another customer", {"extra": {"customer_id": "other"}}, 404),
    ("no such customer as staff", {"staff": True, "extra": {"customer_id": "nobody"}}, 404),
    ("a stranger as staff", {"staff": True, "extra": {"customer_id": "other"}}, 404),
]


@pytest.mark.parametrize(
    ("case", "change", "status"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
async def test_bad_bookings_change_nothing(
    client: httpx.AsyncClient, owner: Owner, case: str, change: dict[str, Any], status: int
) -> None:
    clinic = make_clinic(owner, min_notice_minutes=24 * 60 if change.get("notice") else 0)
    day = soon(clinic, change.get("days", 5))
    owner.execute(
        "insert into public.service_closures (organization_id, service_id, starts_at, ends_at)"
        " values (%s, %s, %s, %s)",
        (clinic.org_id, clinic.service_id, clinic.at(day, "13:45"), clinic.at(day, "14:15")),
    )
    customer = make_user(owner)
    starts_at = clinic.at(day, change.get("at", "10:00"))
    payload: dict[str, Any] = {
        "service_id": str(clinic.service_id),
        "starts_at": starts_at.replace(tzinfo=None).isoformat()
        if change.get("naive")
        else starts_at.isoformat(),
        **change.get("extra", {}),
    }
    if payload.get("customer_id") == "other":
        payload["customer_id"] = str(make_user(owner).id)
    if payload.get("customer_id") == "nobody":
        payload["customer_id"] = str(uuid.uuid4())
    payload.pop(change.get("drop", ""), None)
    caller = clinic.staff if change.get("staff") else customer

    response = await client.post("/v1/appointments", json=payload, headers=caller.headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert count_active(owner, clinic.service_id) == 0


async def test_anonymous_callers_cannot_book(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    response = await client.post(
        "/v1/appointments",
        json={
            "service_id": str(clinic.service_id),
            "starts_at": clinic.at(soon(clinic), "10:00").isoformat(),
        },
    )
    assert response.status_code == 401
    assert count_active(owner, clinic.service_id) == 0


async def test_staff_book_for_a_customer(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    customer = make_user(owner)
    insert_as_owner(owner, clinic, customer, clinic.at(soon(clinic, 3), "09:30"))

    response = await book(
        client, clinic.staff, clinic, clinic.at(soon(clinic), "09:30"), customer_id=str(customer.id)
    )

    assert response.status_code == 201
    assert response.json()["customer_id"] == str(customer.id)
    mine = await client.get(f"/v1/appointments/{response.json()['id']}", headers=customer.headers)
    assert mine.status_code == 200


async def test_staff_book_for_colleagues_but_not_for_people_of_other_organizations(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    elsewhere = make_user(owner)
    other = make_clinic(owner)
    insert_as_owner(owner, other, elsewhere, other.at(soon(other, 3), "09:30"))

    refused = await book(
        client,
        clinic.staff,
        clinic,
        clinic.at(soon(clinic), "09:30"),
        customer_id=str(elsewhere.id),
    )
    assert refused.status_code == 404
    assert count_active(owner, clinic.service_id) == 0
    colleague = await book(
        client,
        clinic.staff,
        clinic,
        clinic.at(soon(clinic), "10:30"),
        customer_id=str(clinic.admin.id),
    )
    assert colleague.status_code == 201


@pytest.mark.parametrize("capacity", [1, 3])
async def test_racing_clients_never_overbook(
    client: httpx.AsyncClient, owner: Owner, capacity: int
) -> None:
    clinic = make_clinic(owner, capacity=capacity)
    starts_at = clinic.at(soon(clinic), "12:00")
    customers = [make_user(owner) for _ in range(50)]

    responses = await asyncio.gather(*(book(client, c, clinic, starts_at) for c in customers))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * capacity + [409] * (50 - capacity)
    assert count_active(owner, clinic.service_id) == capacity


async def test_an_overbooking_insert_by_the_owner_fails(owner: Owner) -> None:
    clinic = make_clinic(owner, capacity=2, buffer_minutes=15)
    day = soon(clinic)
    customer = make_user(owner)

    def insert(hh_mm: str) -> None:
        insert_as_owner(owner, clinic, customer, clinic.at(day, hh_mm))

    insert("10:00")
    insert("10:30")
    # 10:40 overlaps 10:30's place and 10:00's buffer (until 10:45): a third place at 10:40.
    with pytest.raises(psycopg.Error) as refused:
        insert("10:40")
    assert refused.value.sqlstate == "SECAP"
    insert("10:45")
    assert count_active(owner, clinic.service_id) == 3
    assert max_overlap(owner, clinic.service_id) == 2


async def test_repeatable_read_writers_are_refused(owner: Owner) -> None:
    clinic = make_clinic(owner)
    starts_at = clinic.at(soon(clinic), "10:00")
    customer = make_user(owner)
    owner.execute("begin isolation level repeatable read")
    with pytest.raises(psycopg.Error) as refused:
        insert_as_owner(owner, clinic, customer, starts_at)
    owner.execute("rollback")
    assert refused.value.sqlstate == "SEISO"
    assert count_active(owner, clinic.service_id) == 0


async def test_same_idempotency_key_and_body_replays_the_answer(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=5)
    customer = make_user(owner)
    starts_at = clinic.at(soon(clinic), "15:00")
    payload = {"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat()}
    headers = {**customer.headers, "Idempotency-Key": "order-1"}

    first = await client.post("/v1/appointments", json=payload, headers=headers)
    again = await client.post("/v1/appointments", json=payload, headers=headers)
    other_body = await client.post(
        "/v1/appointments", json={**payload, "notes": "changed"}, headers=headers
    )

    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json() == first.json()
    assert other_body.status_code == 422
    assert count_active(owner, clinic.service_id) == 1
    # Keys belong to their sender: another user's same key is a new request.
    other = await client.post(
        "/v1/appointments",
        json=payload,
        headers={**make_user(owner).headers, "Idempotency-Key": "order-1"},
    )
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


async def test_ten_concurrent_sends_of_one_key_book_once(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=20)
    customer = make_user(owner)
    payload = {
        "service_id": str(clinic.service_id),
        "starts_at": clinic.at(soon(clinic), "16:00").isoformat(),
    }
    headers = {**customer.headers, "Idempotency-Key": str(uuid.uuid4())}

    responses = await asyncio.gather(
        *(client.post("/v1/appointments", json=payload, headers=headers) for _ in range(10))
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1
    assert count_active(owner, clinic.service_id) == 1


async def test_a_refused_booking_keeps_its_key_free(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    starts_at = clinic.at(soon(clinic), "10:30")
    blocker = await book(client, make_user(owner), clinic, starts_at)
    customer = make_user(owner)
    payload = {"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat()}
    headers = {**customer.headers, "Idempotency-Key": "retry-me"}

    full = await client.post("/v1/appointments", json=payload, headers=headers)
    await client.delete(f"/v1/appointments/{blocker.json()['id']}", headers=clinic.staff.headers)
    retried = await client.post("/v1/appointments", json=payload, headers=headers)

    assert full.status_code == 409
    assert retried.status_code == 201
    assert count_active(owner, clinic.service_id) == 1


async def test_slot_usage_always_matches_a_recount(client: httpx.AsyncClient, owner: Owner) -> None:
    """The per-slot counts behind availability are kept by a trigger for every writer: the
    API's bookings, reschedules, cancellations and status changes, and plain SQL."""
    clinic = make_clinic(owner, capacity=3)
    day = soon(clinic)
    customers = [make_user(owner) for _ in range(3)]
    booked = []
    for customer, hh_mm in zip(customers, ("09:00", "09:00", "10:00"), strict=True):
        response = await book(client, customer, clinic, clinic.at(day, hh_mm))
        assert response.status_code == 201
        booked.append(response.json()["id"])
    moved = await client.put(
        f"/v1/appointments/{booked[0]}",
        json={"starts_at": clinic.at(day, "11:00").isoformat()},
        headers=customers[0].headers,
    )
    assert moved.status_code == 200
    assert (
        await client.delete(f"/v1/appointments/{booked[1]}", headers=customers[1].headers)
    ).status_code == 200
    checked_in = await client.put(
        f"/v1/appointments/{booked[2]}", json={"status": "checked_in"}, headers=clinic.staff.headers
    )
    assert checked_in.status_code == 200
    insert_as_owner(owner, clinic, make_user(owner), clinic.at(day, "12:00"))
    owner.execute("update public.appointments set status = 'no_show' where id = %s", (booked[2],))

    usage = owner.execute(
        "select starts_at, places from public.appointment_slot_usage where service_id = %s"
        " order by starts_at",
        (clinic.service_id,),
    ).fetchall()
    recount = owner.execute(
        "select starts_at, count(*)::integer from public.appointments where service_id = %s"
        " and status in ('booked', 'checked_in', 'in_service') group by starts_at order by starts_at",
        (clinic.service_id,),
    ).fetchall()
    assert usage == recount
    assert [(row[0], row[1]) for row in usage] == [
        (clinic.at(day, "11:00"), 1),
        (clinic.at(day, "12:00"), 1),
    ]
