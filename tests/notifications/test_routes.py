"""The notification routes: preferences, send, list and mark-read, as their callers."""

from __future__ import annotations

import httpx
import pytest

from tests.appointments.arrange import make_clinic, soon
from tests.factories import Owner, make_user

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
