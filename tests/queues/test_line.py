from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tests.factories import Owner, make_service, make_user
from tests.queues.arrange import act, add_queue, join, make_desk, positions, ticket_row

pytestmark = pytest.mark.anyio


async def test_positions_follow_every_kind_of_change(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    people = [make_user(owner) for _ in range(4)]
    tickets = [await join(client, desk.queue_id, person) for person in people]
    assert [t["number"] for t in tickets] == ["A-001", "A-002", "A-003", "A-004"]
    assert [t["position"] for t in tickets] == [1, 2, 3, 4]
    assert await positions(client, desk) == {"A-001": 1, "A-002": 2, "A-003": 3, "A-004": 4}

    urgent = await join(client, desk.queue_id, desk.staff, priority=5)
    assert urgent["number"] == "A-005"
    assert urgent["position"] == 1
    assert await positions(client, desk) == {
        "A-005": 1,
        "A-001": 2,
        "A-002": 3,
        "A-003": 4,
        "A-004": 5,
    }

    raised = await act(client, desk.staff, tickets[3]["id"], "set_priority", priority=7)
    assert raised.status_code == 200
    assert raised.json()["position"] == 1
    assert await positions(client, desk) == {
        "A-004": 1,
        "A-005": 2,
        "A-001": 3,
        "A-002": 4,
        "A-003": 5,
    }

    called = await client.post(
        f"/v1/queues/{desk.queue_id}/call-next", json={"counter": "1"}, headers=desk.staff.headers
    )
    assert called.json()["number"] == "A-004"
    assert called.json()["status"] == "called"
    assert await positions(client, desk) == {"A-005": 1, "A-001": 2, "A-002": 3, "A-003": 4}

    cancelled = await client.delete(f"/v1/tickets/{tickets[0]['id']}", headers=people[0].headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert await positions(client, desk) == {"A-005": 1, "A-002": 2, "A-003": 3}

    assert (await act(client, desk.staff, tickets[1]["id"], "no_show")).status_code == 200
    requeued = await act(client, desk.staff, tickets[1]["id"], "requeue")
    assert requeued.json()["status"] == "waiting"
    assert requeued.json()["position"] == 3
    assert await positions(client, desk) == {"A-005": 1, "A-003": 2, "A-002": 3}

    other_queue = await add_queue(client, desk.org_id, desk.admin, prefix="B")
    moved = await act(
        client, desk.staff, tickets[2]["id"], "transfer", target_queue_id=str(other_queue)
    )
    assert moved.status_code == 200
    assert moved.json()["number"] == "B-001"
    assert moved.json()["queue_id"] == str(other_queue)
    assert moved.json()["user_id"] == str(people[2].id)
    assert ticket_row(owner, tickets[2]["id"])[0] == "cancelled"
    assert await positions(client, desk) == {"A-005": 1, "A-002": 2}

    own = await client.get(f"/v1/tickets/{tickets[1]['id']}", headers=people[1].headers)
    assert own.json()["position"] == 2


async def test_a_checked_in_appointment_stands_in_line_at_its_booked_time(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    service_id = make_service(owner, desk.org_id)
    early, late = make_user(owner), make_user(owner)
    first = await join(client, desk.queue_id, early)
    second = await join(client, desk.queue_id, late)
    now = datetime.now(UTC)
    for ticket, minutes in ((first, 20), (second, 1)):
        owner.execute(
            "update public.tickets set line_position_at = %s where id = %s",
            (now - timedelta(minutes=minutes), ticket["id"]),
        )
    booked = make_user(owner)
    starts_at = now - timedelta(minutes=5)
    appointment = owner.execute(
        "insert into public.appointments (organization_id, service_id, customer_id, starts_at,"
        " ends_at) values (%s, %s, %s, %s, %s) returning id",
        (desk.org_id, service_id, booked.id, starts_at, starts_at + timedelta(minutes=30)),
    ).fetchone()
    assert appointment is not None

    ticket = await join(client, desk.queue_id, booked, appointment_id=str(appointment[0]))

    assert ticket["position"] == 2
    assert ticket["user_id"] == str(booked.id)
    assert ticket["appointment_id"] == str(appointment[0])
    assert await positions(client, desk) == {"A-001": 1, "A-003": 2, "A-002": 3}
    status = owner.execute(
        "select status from public.appointments where id = %s", (appointment[0],)
    ).fetchone()
    assert status == ("checked_in",)
    again = await client.post(
        f"/v1/queues/{desk.queue_id}/tickets",
        json={"appointment_id": str(appointment[0])},
        headers=desk.staff.headers,
    )
    assert again.status_code == 409


async def test_a_customer_checks_in_only_inside_the_window(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    service_id = make_service(owner, desk.org_id)
    customer = make_user(owner)
    starts_at = datetime.now(UTC) + timedelta(hours=2)
    row = owner.execute(
        "insert into public.appointments (organization_id, service_id, customer_id, starts_at,"
        " ends_at) values (%s, %s, %s, %s, %s) returning id",
        (desk.org_id, service_id, customer.id, starts_at, starts_at + timedelta(minutes=30)),
    ).fetchone()
    assert row is not None
    url = f"/v1/queues/{desk.queue_id}/tickets"

    too_early = await client.post(
        url, json={"appointment_id": str(row[0])}, headers=customer.headers
    )
    stranger = await client.post(
        url, json={"appointment_id": str(row[0])}, headers=make_user(owner).headers
    )

    assert too_early.status_code == 409
    assert stranger.status_code == 404
    assert owner.execute(
        "select status from public.appointments where id = %s", (row[0],)
    ).fetchone() == ("booked",)
    assert owner.execute(
        "select count(*) from public.tickets where queue_id = %s", (desk.queue_id,)
    ).fetchone() == (0,)

    owner.execute(
        "update public.appointments set starts_at = now() + interval '10 minutes',"
        " ends_at = now() + interval '40 minutes' where id = %s",
        (row[0],),
    )
    on_time = await client.post(url, json={"appointment_id": str(row[0])}, headers=customer.headers)
    assert on_time.status_code == 201, on_time.text
    assert owner.execute(
        "select status from public.appointments where id = %s", (row[0],)
    ).fetchone() == ("checked_in",)


async def test_one_active_ticket_per_user_and_customers_set_no_priority(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    customer = make_user(owner)
    first = await join(client, desk.queue_id, customer)
    url = f"/v1/queues/{desk.queue_id}/tickets"

    twice = await client.post(url, json={}, headers=customer.headers)
    for_someone = await client.post(
        url, json={"user_id": str(customer.id)}, headers=desk.staff.headers
    )
    pushy = await client.post(url, json={"priority": 9}, headers=make_user(owner).headers)
    anonymous = await client.post(url, json={})

    assert twice.status_code == for_someone.status_code == 409
    assert pushy.status_code == 403
    assert anonymous.status_code == 401
    assert owner.execute(
        "select count(*) from public.tickets where queue_id = %s", (desk.queue_id,)
    ).fetchone() == (1,)
    assert owner.execute(
        "select last_number from public.queue_counters where queue_id = %s", (desk.queue_id,)
    ).fetchone() == (1,)
    await client.delete(f"/v1/tickets/{first['id']}", headers=customer.headers)
    assert (await join(client, desk.queue_id, customer))["number"] == "A-002"


async def test_every_forbidden_transition_is_a_conflict_that_changes_nothing(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    forbidden = {
        "waiting": ["start", "complete", "requeue"],
        "called": ["call", "complete", "requeue", "set_priority"],
        "serving": ["call", "start", "no_show", "cancel", "requeue", "set_priority"],
        "served": ["call", "start", "complete", "no_show", "cancel", "requeue", "transfer"],
        "no_show": ["call", "start", "complete", "no_show", "cancel", "set_priority"],
        "cancelled": ["call", "start", "complete", "no_show", "cancel", "requeue"],
    }
    paths = {
        "waiting": [],
        "called": ["call"],
        "serving": ["call", "start"],
        "served": ["call", "start", "complete"],
        "no_show": ["no_show"],
        "cancelled": ["cancel"],
    }
    other_queue = await add_queue(client, desk.org_id, desk.admin, prefix="Z")
    for status, actions in forbidden.items():
        ticket = await join(client, desk.queue_id, desk.staff)
        for step in paths[status]:
            response = await act(client, desk.staff, ticket["id"], step, counter="1")
            assert response.status_code == 200, (step, response.text)
        before = ticket_row(owner, ticket["id"])
        assert before[0] == status
        for action in actions:
            response = await act(
                client,
                desk.staff,
                ticket["id"],
                action,
                counter="2",
                priority=3,
                target_queue_id=str(other_queue),
            )
            assert response.status_code == 409, (status, action, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert ticket_row(owner, ticket["id"]) == before
    assert owner.execute(
        "select count(*) from public.tickets where queue_id = %s", (other_queue,)
    ).fetchone() == (0,)


async def test_a_call_without_a_counter_keeps_the_tickets_counter(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    plain = await join(client, desk.queue_id, make_user(owner))
    assigned = await join(client, desk.queue_id, make_user(owner))
    owner.execute("update public.tickets set counter = '5' where id = %s", (assigned["id"],))

    called_plain = await act(client, desk.staff, plain["id"], "call")
    called_assigned = await act(client, desk.staff, assigned["id"], "call")

    assert called_plain.status_code == 200, called_plain.text
    assert called_assigned.status_code == 200, called_assigned.text
    assert (called_plain.json()["status"], called_plain.json()["counter"]) == ("called", None)
    assert called_assigned.json()["counter"] == "5"
    assert ticket_row(owner, plain["id"])[:2] == ("called", None)
    assert ticket_row(owner, assigned["id"])[:2] == ("called", "5")


async def test_customers_cannot_run_the_queue(client: httpx.AsyncClient, owner: Owner) -> None:
    desk = await make_desk(client, owner)
    customer = make_user(owner)
    ticket = await join(client, desk.queue_id, customer)

    update = await act(client, customer, ticket["id"], "call", counter="1")
    call = await client.post(
        f"/v1/queues/{desk.queue_id}/call-next", json={"counter": "1"}, headers=customer.headers
    )

    assert update.status_code == call.status_code == 403
    assert ticket_row(owner, ticket["id"])[0] == "waiting"


async def test_concurrent_calls_never_get_the_same_ticket(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    for _ in range(10):
        await join(client, desk.queue_id, desk.staff)

    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/queues/{desk.queue_id}/call-next",
                json={"counter": f"C{i}"},
                headers=desk.staff.headers,
            )
            for i in range(20)
        )
    )

    called = [r.json() for r in responses if r.status_code == 200]
    assert sorted(r.status_code for r in responses) == [200] * 10 + [204] * 10
    assert len({t["id"] for t in called}) == 10
    assert all(r.content == b"" for r in responses if r.status_code == 204)
    rows = owner.execute(
        "select count(*), count(distinct counter) from public.tickets"
        " where queue_id = %s and status = 'called'",
        (desk.queue_id,),
    ).fetchone()
    assert rows == (10, 10)


async def test_a_booked_customer_checks_in_after_the_capacity_was_lowered(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    service_id = make_service(owner, desk.org_id, capacity=2)
    starts_at = datetime.now(UTC) - timedelta(minutes=5)
    booked = [make_user(owner) for _ in range(2)]
    ids = []
    for customer in booked:
        row = owner.execute(
            "insert into public.appointments (organization_id, service_id, customer_id,"
            " starts_at, ends_at) values (%s, %s, %s, %s, %s) returning id",
            (desk.org_id, service_id, customer.id, starts_at, starts_at + timedelta(minutes=30)),
        ).fetchone()
        assert row is not None
        ids.append(row[0])
    owner.execute("update public.services set capacity = 1 where id = %s", (service_id,))

    # Both already hold their places: checking in takes no new one.
    for customer, appointment_id in zip(booked, ids, strict=True):
        ticket = await join(client, desk.queue_id, customer, appointment_id=str(appointment_id))
        assert ticket["appointment_id"] == str(appointment_id)
    assert owner.execute(
        "select count(*) from public.appointments where id = any(%s) and status = 'checked_in'",
        (ids,),
    ).fetchone() == (2,)
    # A new place in the slot is still refused at the lowered capacity.
    with pytest.raises(psycopg.DatabaseError, match="the slot is full"):
        owner.execute(
            "insert into public.appointments (organization_id, service_id, customer_id,"
            " starts_at, ends_at) values (%s, %s, %s, %s, %s)",
            (
                desk.org_id,
                service_id,
                make_user(owner).id,
                starts_at,
                starts_at + timedelta(minutes=30),
            ),
        )


async def test_staff_take_tickets_only_for_people_their_organization_deals_with(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    stranger = make_user(owner)
    refused = await client.post(
        f"/v1/queues/{desk.queue_id}/tickets",
        json={"user_id": str(stranger.id)},
        headers=desk.staff.headers,
    )
    assert refused.status_code == 404, refused.text
    assert owner.execute(
        "select count(*) from public.tickets where user_id = %s", (stranger.id,)
    ).fetchone() == (0,)
    # Once the person has taken a ticket of their own, staff may line them up again.
    mine = await join(client, desk.queue_id, stranger)
    await act(client, desk.staff, mine["id"], "cancel")
    again = await join(client, desk.queue_id, desk.staff, user_id=str(stranger.id))
    assert again["user_id"] == str(stranger.id)
    walk_in = await join(client, desk.queue_id, desk.staff)
    assert walk_in["user_id"] is None
