from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from slotease.config import Settings
from slotease.kit.events import DomainEvent, EventBus
from tests.appointments.arrange import Clinic, book, count_active, make_clinic, max_overlap, soon
from tests.factories import Owner, User, make_user
from tests.notifications.support import run_periodic
from tests.waitlist.conftest import OFFER_MINUTES

pytestmark = pytest.mark.anyio


@pytest.fixture
def published(bus: EventBus) -> Iterator[list[DomainEvent]]:
    seen: list[DomainEvent] = []

    async def record(event: DomainEvent) -> None:
        seen.append(event)

    unsubscribe = bus.subscribe(record)
    yield seen
    unsubscribe()


async def _full_slot(
    client: httpx.AsyncClient, owner: Owner, *, capacity: int = 1
) -> tuple[Clinic, datetime, list[dict[str, Any]]]:
    """A clinic whose 10:00 slot is taken by `capacity` appointments."""
    clinic = make_clinic(owner, capacity=capacity)
    slot = clinic.at(soon(clinic), "10:00")
    booked = []
    for _ in range(capacity):
        response = await book(client, make_user(owner), clinic, slot)
        assert response.status_code == 201
        booked.append(response.json())
    return clinic, slot, booked


async def _join(
    client: httpx.AsyncClient, user: User, clinic: Clinic, starts_at: datetime
) -> httpx.Response:
    return await client.post(
        "/v1/waitlist",
        json={"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat()},
        headers=user.headers,
    )


async def _waiter(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic, slot: datetime
) -> tuple[User, str]:
    user = make_user(owner)
    response = await _join(client, user, clinic, slot)
    assert response.status_code == 201, response.text
    return user, response.json()["id"]


async def _offered_to_first_of_two(
    client: httpx.AsyncClient, owner: Owner
) -> tuple[Clinic, datetime, tuple[User, str], tuple[User, str]]:
    """Two waiters for a full capacity-1 slot, whose place the staff then cancels."""
    clinic, slot, [taken] = await _full_slot(client, owner)
    first = await _waiter(client, owner, clinic, slot)
    second = await _waiter(client, owner, clinic, slot)
    cancel = await client.delete(f"/v1/appointments/{taken['id']}", headers=clinic.staff.headers)
    assert cancel.status_code == 200
    return clinic, slot, first, second


def _entry(owner: Owner, entry_id: str) -> tuple[Any, ...]:
    row = owner.execute(
        "select status, offer_expires_at - offered_at, appointment_id"
        " from public.waitlist_entries where id = %s",
        (entry_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _offer_notifications(owner: Owner, user: User) -> list[tuple[Any, ...]]:
    return owner.execute(
        "select channel, template, status, data ->> 'service_id', (data ->> 'starts_at')::timestamptz"
        " from public.notifications where user_id = %s",
        (user.id,),
    ).fetchall()


async def test_only_a_full_slot_on_the_grid_can_be_waited_for_once(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic, slot, _ = await _full_slot(client, owner)
    user = make_user(owner)

    assert (await _join(client, user, clinic, slot + timedelta(hours=1))).status_code == 409
    assert (await _join(client, user, clinic, slot + timedelta(minutes=10))).status_code == 409
    assert (await _join(client, user, clinic, slot.replace(hour=20))).status_code == 409
    joined = await _join(client, user, clinic, slot)
    assert joined.status_code == 201
    body = joined.json()
    assert (body["service_id"], body["status"], body["position"]) == (
        str(clinic.service_id),
        "waiting",
        1,
    )
    assert datetime.fromisoformat(body["starts_at"]) == slot
    assert (await _join(client, user, clinic, slot)).status_code == 409
    second = await _join(client, make_user(owner), clinic, slot)
    assert second.json()["position"] == 2

    unknown = await client.post(
        "/v1/waitlist",
        json={"service_id": str(uuid.uuid4()), "starts_at": slot.isoformat()},
        headers=user.headers,
    )
    assert unknown.status_code == 404
    assert (await client.post("/v1/waitlist", json={})).status_code == 401
    listed = (await client.get("/v1/waitlist", headers=user.headers)).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]
    assert owner.execute(
        "select count(*) from public.waitlist_entries where service_id = %s", (clinic.service_id,)
    ).fetchone() == (2,)


async def test_a_cancellation_offers_the_place_to_the_first_waiter(
    client: httpx.AsyncClient, owner: Owner, published: list[DomainEvent]
) -> None:
    clinic, slot, [taken] = await _full_slot(client, owner)
    first, first_entry = await _waiter(client, owner, clinic, slot)
    second, second_entry = await _waiter(client, owner, clinic, slot)
    owner_of_place = taken["customer_id"]
    assert owner_of_place != str(first.id)

    cancel = await client.delete(f"/v1/appointments/{taken['id']}", headers=clinic.staff.headers)
    assert cancel.status_code == 200

    assert _entry(owner, first_entry) == ("offered", timedelta(minutes=OFFER_MINUTES), None)
    assert _entry(owner, second_entry)[0] == "waiting"
    assert _offer_notifications(owner, first) == [
        ("in_app", "waitlist.offer", "delivered", str(clinic.service_id), slot)
    ]
    assert _offer_notifications(owner, second) == []
    offers = [e.payload for e in published if e.name == "waitlist.offered"]
    assert [(o["id"], o["user_id"]) for o in offers] == [(first_entry, str(first.id))]
    mine = (await client.get("/v1/waitlist", headers=second.headers)).json()["items"]
    assert [(i["status"], i["position"]) for i in mine] == [("waiting", 1)]


async def test_the_offer_is_made_in_the_transaction_that_frees_the_place(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic, slot, [taken] = await _full_slot(client, owner)
    waiter, entry = await _waiter(client, owner, clinic, slot)
    cancel = "update public.appointments set status = 'cancelled' where id = %s"

    with owner.transaction(force_rollback=True):
        owner.execute(cancel, (taken["id"],))
        assert _entry(owner, entry)[0] == "offered"
    assert _entry(owner, entry) == ("waiting", None, None)
    assert _offer_notifications(owner, waiter) == []

    # Any writer frees places, psql included; without the API's setting the hold is 15 min.
    owner.execute(cancel, (taken["id"],))
    assert _entry(owner, entry) == ("offered", timedelta(minutes=15), None)


async def test_a_move_away_offers_the_old_place(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic, slot, [taken] = await _full_slot(client, owner)
    _, entry = await _waiter(client, owner, clinic, slot)
    owner.execute(
        "update public.appointments set starts_at = starts_at + interval '35 days',"
        " ends_at = ends_at + interval '35 days' where id = %s",
        (taken["id"],),
    )
    assert _entry(owner, entry)[0] == "offered"


async def test_accepting_books_the_place_and_frees_nothing_else(
    client: httpx.AsyncClient, owner: Owner, published: list[DomainEvent]
) -> None:
    clinic, slot, (first, first_entry), (_, second_entry) = await _offered_to_first_of_two(
        client, owner
    )
    path = f"/v1/waitlist/{first_entry}/accept"

    assert (await client.post(path, headers=make_user(owner).headers)).status_code == 404
    assert (await client.post(path, headers=clinic.staff.headers)).status_code == 404
    accepted = await client.post(path, headers=first.headers)
    assert accepted.status_code == 201, accepted.text
    body = accepted.json()
    appointment = body["appointment"]
    assert (body["status"], body["appointment_id"]) == ("booked", appointment["id"])
    assert (appointment["customer_id"], appointment["status"]) == (str(first.id), "booked")
    assert datetime.fromisoformat(appointment["starts_at"]) == slot
    assert count_active(owner, clinic.service_id) == 1
    assert _entry(owner, second_entry)[0] == "waiting"
    assert "appointment.created" in [e.name for e in published]
    again = await client.post(path, headers=first.headers)
    assert again.status_code == 409
    assert count_active(owner, clinic.service_id) == 1


async def test_an_expired_offer_passes_to_the_next_waiter(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic, _, (first, first_entry), (second, second_entry) = await _offered_to_first_of_two(
        client, owner
    )
    owner.execute(
        "update public.waitlist_entries set offer_expires_at = now() - interval '1 second'"
        " where id = %s",
        (first_entry,),
    )

    late = await client.post(f"/v1/waitlist/{first_entry}/accept", headers=first.headers)
    assert late.status_code == 409
    assert "expired" in late.json()["detail"]
    assert _entry(owner, first_entry)[0] == "expired"
    assert _entry(owner, second_entry)[:2] == ("offered", timedelta(minutes=OFFER_MINUTES))
    assert len(_offer_notifications(owner, second)) == 1
    assert count_active(owner, clinic.service_id) == 0
    assert (
        await client.post(f"/v1/waitlist/{second_entry}/accept", headers=second.headers)
    ).status_code == 201


async def test_an_expired_offer_passes_on_without_anyone_calling(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, bus: EventBus
) -> None:
    _, _, (_, first_entry), (second, second_entry) = await _offered_to_first_of_two(client, owner)
    owner.execute(
        "update public.waitlist_entries set offer_expires_at = now() - interval '1 second'"
        " where id = %s",
        (first_entry,),
    )

    await run_periodic(settings, "waitlist.expire_offers", bus)

    assert _entry(owner, first_entry)[0] == "expired"
    assert _entry(owner, second_entry)[:2] == ("offered", timedelta(minutes=OFFER_MINUTES))
    told = [n for n in _offer_notifications(owner, second) if n[0] == "in_app"]
    assert len(told) == 1


async def test_leaving_with_an_offer_passes_it_on(client: httpx.AsyncClient, owner: Owner) -> None:
    _, _, (first, first_entry), (_, second_entry) = await _offered_to_first_of_two(client, owner)

    path = f"/v1/waitlist/{first_entry}"
    assert (await client.delete(path, headers=make_user(owner).headers)).status_code == 404
    assert (await client.delete(path, headers=first.headers)).status_code == 204
    assert owner.execute(
        "select count(*) from public.waitlist_entries where id = %s", (first_entry,)
    ).fetchone() == (0,)
    assert _entry(owner, second_entry)[0] == "offered"


async def test_two_offered_waiters_cannot_both_take_the_last_place(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic, slot, taken = await _full_slot(client, owner, capacity=2)
    waiters = [await _waiter(client, owner, clinic, slot) for _ in range(2)]
    for appointment in taken:
        await client.delete(f"/v1/appointments/{appointment['id']}", headers=clinic.staff.headers)
    assert [_entry(owner, entry)[0] for _, entry in waiters] == ["offered", "offered"]
    # An offer does not stop a direct booking: one of the two places goes that way.
    assert (await book(client, make_user(owner), clinic, slot)).status_code == 201

    answers = await asyncio.gather(
        *(
            client.post(f"/v1/waitlist/{entry}/accept", headers=user.headers)
            for user, entry in waiters
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    assert sorted(_entry(owner, entry)[0] for _, entry in waiters) == ["booked", "expired"]
    assert count_active(owner, clinic.service_id) == 2
    assert max_overlap(owner, clinic.service_id) == 2


async def test_more_capacity_offers_the_new_places(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic, slot, _ = await _full_slot(client, owner)
    waiters = [await _waiter(client, owner, clinic, slot) for _ in range(3)]
    patched = await client.patch(
        f"/v1/services/{clinic.service_id}", json={"capacity": 3}, headers=clinic.admin.headers
    )
    assert patched.status_code == 200, patched.text
    assert [_entry(owner, entry)[0] for _, entry in waiters] == ["offered", "offered", "waiting"]
