from __future__ import annotations

import json

import httpx
import pytest

from slotease.kit.pagination import encode_cursor
from tests.factories import Owner, make_user
from tests.queues.arrange import join, make_desk

pytestmark = pytest.mark.anyio


async def test_an_admin_opens_a_queue_with_default_settings(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner, prefix="AB")

    listed = await client.get(f"/v1/organizations/{desk.org_id}/queues")

    assert listed.status_code == 200
    [queue] = listed.json()["items"]
    assert queue["id"] == str(desk.queue_id)
    assert queue["prefix"] == "AB"
    assert queue["settings"] == {
        "grace_minutes": 5,
        "requeue_no_show": True,
        "check_in_window_minutes": {"before": 30, "after": 15},
    }


async def test_a_forged_cursor_is_a_422(client: httpx.AsyncClient, owner: Owner) -> None:
    desk = await make_desk(client, owner)
    url = f"/v1/organizations/{desk.org_id}/queues"

    # Well-formed as a cursor, but its id is not one: refused before it reaches the database.
    forged = await client.get(url, params={"cursor": encode_cursor(["Desk", "not-an-id"])})
    following = await client.get(url, params={"cursor": encode_cursor(["A", str(desk.queue_id)])})

    assert forged.status_code == 422
    assert forged.headers["content-type"] == "application/problem+json"
    assert following.status_code == 200


async def test_only_admins_open_queues_and_bad_prefixes_are_refused(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    url = f"/v1/organizations/{desk.org_id}/queues"

    by_staff = await client.post(url, json={"name": "X", "prefix": "B"}, headers=desk.staff.headers)
    lower = await client.post(url, json={"name": "X", "prefix": "b"}, headers=desk.admin.headers)
    long = await client.post(url, json={"name": "X", "prefix": "ABCD"}, headers=desk.admin.headers)

    assert by_staff.status_code == 403
    assert lower.status_code == 422
    assert long.status_code == 422
    count = owner.execute(
        "select count(*) from public.queues where organization_id = %s", (desk.org_id,)
    ).fetchone()
    assert count == (1,)


async def test_the_public_view_names_nobody(client: httpx.AsyncClient, owner: Owner) -> None:
    desk = await make_desk(client, owner)
    customer = make_user(owner)
    other = make_user(owner)
    mine = await join(client, desk.queue_id, customer)
    await join(client, desk.queue_id, other)
    await client.post(
        f"/v1/queues/{desk.queue_id}/call-next", json={"counter": "3"}, headers=desk.staff.headers
    )

    anonymous = await client.get(f"/v1/queues/{desk.queue_id}")
    as_customer = await client.get(f"/v1/queues/{desk.queue_id}", headers=other.headers)
    as_staff = await client.get(f"/v1/queues/{desk.queue_id}", headers=desk.staff.headers)

    assert anonymous.status_code == as_customer.status_code == 200
    public = anonymous.json()
    assert public["waiting_count"] == 1
    assert public["now_serving"] == [{"number": "A-001", "counter": "3"}]
    assert public["tickets"] is None
    text = json.dumps(public) + json.dumps(as_customer.json())
    for secret in (str(customer.id), str(other.id), mine["id"], "user_id"):
        assert secret not in text
    staff_tickets = as_staff.json()["tickets"]
    assert {t["user_id"] for t in staff_tickets} == {str(customer.id), str(other.id)}


async def test_a_ticket_is_visible_to_its_holder_and_staff_only(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    customer = make_user(owner)
    stranger = make_user(owner)
    ticket = await join(client, desk.queue_id, customer)
    url = f"/v1/tickets/{ticket['id']}"

    assert (await client.get(url, headers=customer.headers)).status_code == 200
    assert (await client.get(url, headers=desk.staff.headers)).status_code == 200
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.get(url)).status_code == 401
    assert (await client.delete(url, headers=stranger.headers)).status_code == 404


async def test_an_inactive_queue_is_hidden_from_the_public(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner)
    owner.execute("update public.queues set is_active = false where id = %s", (desk.queue_id,))
    customer = make_user(owner)

    assert (await client.get(f"/v1/queues/{desk.queue_id}")).status_code == 404
    joined = await client.post(
        f"/v1/queues/{desk.queue_id}/tickets", json={}, headers=customer.headers
    )
    assert joined.status_code == 404
    staff = await client.get(f"/v1/queues/{desk.queue_id}", headers=desk.staff.headers)
    assert staff.status_code == 200
