"""The notification routes: preferences, send, list and mark-read, as their callers."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.appointments.arrange import insert_as_owner, make_clinic, soon
from tests.factories import Owner, User, add_member, make_user

pytestmark = pytest.mark.anyio


async def test_preferences_round_trip_and_reject_bad_input(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner)
    response = await client.get("/v1/me/notification-preferences", headers=user.headers)
    assert response.json()["email"] is True
    assert response.json()["quiet_hours"] is None
    wanted = {
        "email": True, "sms": False, "push": True, "in_app": True,
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Paris"},
        "fallback_order": ["sms", "email"], "push_token": "device-1",
    }  # fmt: skip
    response = await client.put(
        "/v1/me/notification-preferences", json=wanted, headers=user.headers
    )
    assert response.status_code == 200
    assert response.json() == wanted
    bad = {**wanted, "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Base"}}
    response = await client.put("/v1/me/notification-preferences", json=bad, headers=user.headers)
    assert response.status_code == 422
    response = await client.get("/v1/me/notification-preferences", headers=user.headers)
    assert response.json() == wanted


async def test_staff_send_to_their_customers_who_list_and_mark_read(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer = make_user(owner)
    stranger = make_user(owner)
    starts_at = clinic.at(soon(clinic), "09:30").isoformat()
    response = await client.post(
        "/v1/appointments",
        json={"service_id": str(clinic.service_id), "starts_at": starts_at},
        headers=customer.headers,
    )
    assert response.status_code == 201
    body = {
        "user_id": str(customer.id),
        "channels": ["in_app", "email"],
        "subject": "Hi",
        "body": "Bring your card",
    }
    response = await client.post("/v1/notifications/send", json=body, headers=clinic.staff.headers)
    assert response.status_code == 202, response.text
    sent = response.json()
    assert sent["status"] == "queued"
    assert len(sent["notifications"]) == 2
    # Someone the clinic has never dealt with cannot be messaged by its staff.
    other = {**body, "user_id": str(stranger.id)}
    response = await client.post("/v1/notifications/send", json=other, headers=clinic.staff.headers)
    assert response.status_code == 404
    response = await client.post("/v1/notifications/send", json=body, headers=stranger.headers)
    assert response.status_code == 404

    page = (
        await client.get(f"/v1/notifications/user/{customer.id}?limit=1", headers=customer.headers)
    ).json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = await client.get(
        f"/v1/notifications/user/{customer.id}",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers=customer.headers,
    )
    ids = {page["items"][0]["id"], rest.json()["items"][0]["id"]}
    assert ids == {n["id"] for n in sent["notifications"]}
    response = await client.get(f"/v1/notifications/user/{customer.id}", headers=stranger.headers)
    assert response.status_code == 404

    in_app = next(n["id"] for n in sent["notifications"] if n["channel"] == "in_app")
    response = await client.put(f"/v1/notifications/mark-read/{in_app}", headers=stranger.headers)
    assert response.status_code == 404
    response = await client.put(f"/v1/notifications/mark-read/{in_app}", headers=customer.headers)
    assert response.status_code == 200
    assert response.json()["read_at"]
    unread = await client.get(
        f"/v1/notifications/user/{customer.id}?unread=true", headers=customer.headers
    )
    assert unread.json()["items"] == []


async def test_bulk_to_an_audience_is_batched(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner, capacity=5)
    day = soon(clinic, 3)
    customers = [make_user(owner) for _ in range(3)]
    for customer in customers:
        response = await client.post(
            "/v1/appointments",
            json={
                "service_id": str(clinic.service_id),
                "starts_at": clinic.at(day, "14:00").isoformat(),
            },
            headers=customer.headers,
        )
        assert response.status_code == 201
    body = {
        "organization_id": str(clinic.org_id), "audience": {"date": day.isoformat()},
        "channels": ["in_app"], "subject": "Closed at noon", "body": "Sorry",
    }  # fmt: skip
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=clinic.staff.headers
    )
    assert response.status_code == 403
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=clinic.admin.headers
    )
    assert response.status_code == 202
    batch = response.json()
    assert batch["count"] == 3
    recipients = owner.execute(
        "select user_id from public.notifications where batch_id = %s", (batch["batch_id"],)
    ).fetchall()
    assert {r[0] for r in recipients} == {c.id for c in customers}
    assert owner.execute(
        "select count(*) from public.procrastinate_jobs where task_name = 'notifications.deliver'"
        " and jsonb_array_length(args -> 'ids') = 3"
    ).fetchone() == (1,)


def _message(user: User, **extra: object) -> dict[str, object]:
    return {"user_id": str(user.id), "channels": ["in_app"], "body": "Hello", **extra}


async def test_staff_notify_exactly_the_people_their_organization_deals_with(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    colleague = make_user(owner)
    add_member(owner, clinic.org_id, colleague, "staff")
    waiting = make_user(owner)
    owner.execute(
        "insert into public.waitlist_entries (service_id, user_id, starts_at) values (%s, %s, %s)",
        (clinic.service_id, waiting.id, clinic.at(soon(clinic), "10:00")),
    )
    elsewhere = make_user(owner)
    insert_as_owner(owner, make_clinic(owner), elsewhere, clinic.at(soon(clinic), "10:00"))
    stranger = make_user(owner)

    for user in (colleague, waiting):
        response = await client.post(
            "/v1/notifications/send", json=_message(user), headers=clinic.staff.headers
        )
        assert response.status_code == 202, response.text
    for user in (elsewhere, stranger):
        for extra in ({}, {"organization_id": str(clinic.org_id)}):
            response = await client.post(
                "/v1/notifications/send",
                json=_message(user, **extra),
                headers=clinic.staff.headers,
            )
            assert response.status_code == 404
    received = owner.execute(
        "select count(*) from public.notifications where user_id = any (%s)",
        ([elsewhere.id, stranger.id],),
    ).fetchone()
    assert received == (0,)


async def test_bulk_to_anyone_outside_the_organization_is_404_and_sends_nothing(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer, stranger = make_user(owner), make_user(owner)
    insert_as_owner(owner, clinic, customer, clinic.at(soon(clinic), "10:00"))
    body = {
        "organization_id": str(clinic.org_id), "channels": ["in_app"], "subject": "Hi",
        "body": "Hello", "user_ids": [str(customer.id), str(stranger.id)],
    }  # fmt: skip
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=clinic.admin.headers
    )
    assert response.status_code == 404
    sent = owner.execute(
        "select count(*) from public.notifications where organization_id = %s", (clinic.org_id,)
    ).fetchone()
    assert sent == (0,)
    body["user_ids"] = [str(customer.id), str(clinic.staff.id)]
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=clinic.admin.headers
    )
    assert response.status_code == 202
    assert response.json()["count"] == 2


async def test_bulk_for_an_organization_the_caller_cannot_see_is_404(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    other = make_clinic(owner)
    body = {
        "organization_id": str(uuid.uuid4()), "channels": ["in_app"], "subject": "Hi",
        "body": "Hello", "user_ids": [str(clinic.staff.id)],
    }  # fmt: skip
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=clinic.admin.headers
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    # An active organization is in the public directory, but its people are its members'
    # business: to an outsider, an admin elsewhere included, it is not there either.
    body["organization_id"] = str(other.org_id)
    response = await client.get(f"/v1/organizations/{other.org_id}", headers=clinic.admin.headers)
    assert response.status_code == 200
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=clinic.admin.headers
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "No such organization."
    owner.execute(
        "update public.organizations set is_active = false where id = %s", (other.org_id,)
    )
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=clinic.admin.headers
    )
    assert response.status_code == 404
    # Visible to its own staff, who may not send in bulk: that one is a 403.
    response = await client.post(
        "/v1/notifications/send-bulk", json=body, headers=other.staff.headers
    )
    assert response.status_code == 403
    sent = owner.execute(
        "select count(*) from public.notifications where organization_id = %s", (other.org_id,)
    ).fetchone()
    assert sent == (0,)


async def test_urgent_messages_are_for_admins_and_audited(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer = make_user(owner)
    insert_as_owner(owner, clinic, customer, clinic.at(soon(clinic), "10:00"))
    urgent = _message(customer, urgent=True)

    response = await client.post(
        "/v1/notifications/send", json=urgent, headers=clinic.staff.headers
    )
    assert response.status_code == 403
    response = await client.post(
        "/v1/notifications/send", json=urgent, headers=clinic.admin.headers
    )
    assert response.status_code == 202
    [sent] = response.json()["notifications"]
    audited = owner.execute(
        "select row_id, actor_id from public.audit_log"
        " where table_name = 'notifications' and organization_id = %s",
        (clinic.org_id,),
    ).fetchall()
    assert audited == [(sent["id"], clinic.admin.id)]
    ordinary = await client.post(
        "/v1/notifications/send", json=_message(customer), headers=clinic.staff.headers
    )
    assert ordinary.status_code == 202
    assert (
        len(
            owner.execute(
                "select 1 from public.audit_log where table_name = 'notifications'"
                " and organization_id = %s",
                (clinic.org_id,),
            ).fetchall()
        )
        == 1
    )


async def test_nobody_sends_the_invitation_template_with_a_link_of_their_own(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    message = _message(
        clinic.staff,
        template="invitation",
        data={"link": "https://evil.example/", "role": "admin", "expires_at": "soon"},
    )
    response = await client.post(
        "/v1/notifications/send", json=message, headers=clinic.admin.headers
    )
    assert response.status_code == 422
    sent = owner.execute(
        "select count(*) from public.notifications where user_id = %s", (clinic.staff.id,)
    ).fetchone()
    assert sent == (0,)
