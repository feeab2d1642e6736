"""In-app messages of a send: delivered in the sender's transaction and shown on the
recipient's `user:` topic once it commits, with no worker running (the test server runs
none); the other channels still wait for their job."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.appointments.arrange import insert_as_owner, make_clinic, soon
from tests.factories import Owner, make_user
from tests.realtime.conftest import receive, subscribe, ws_url

pytestmark = pytest.mark.anyio


async def test_an_in_app_send_reaches_the_user_topic_without_a_worker(
    server_url: str, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    customer, quiet = make_user(owner), make_user(owner)
    for person, at in ((customer, "09:30"), (quiet, "10:30")):
        insert_as_owner(owner, clinic, person, clinic.at(soon(clinic), at))
    owner.execute(
        "insert into public.notification_preferences (user_id, in_app) values (%s, false)",
        (quiet.id,),
    )
    body = {"channels": ["in_app", "email"], "subject": "Running late", "body": "20 minutes"}
    async with (
        connect(ws_url(server_url, customer.token)) as ws,
        httpx.AsyncClient(base_url=server_url, headers=clinic.staff.headers) as http,
    ):
        assert (await subscribe(ws, f"user:{customer.id}"))["type"] == "subscribed"
        response = await http.post(
            "/v1/notifications/send", json={**body, "user_id": str(customer.id)}
        )
        assert response.status_code == 202, response.text
        ids = {n["channel"]: n["id"] for n in response.json()["notifications"]}
        event = await receive(ws)
        assert event["topic"] == f"user:{customer.id}"
        assert event["event"] == "notification.created"
        assert event["payload"]["id"] == ids["in_app"]
        assert event["payload"]["body"] == "20 minutes"
        # Someone who turned in-app messages off gets none: nothing shown, nothing delivered.
        response = await http.post(
            "/v1/notifications/send", json={**body, "user_id": str(quiet.id)}
        )
        assert response.status_code == 202, response.text
        skipped = next(
            n["id"] for n in response.json()["notifications"] if n["channel"] == "in_app"
        )
        listed = await http.get(
            f"/v1/notifications/user/{customer.id}",
            headers={"Authorization": f"Bearer {customer.token}"},
        )
    statuses = dict(
        owner.execute(
            "select id::text, status from public.notifications where id::text = any (%s)",
            ([*ids.values(), skipped],),
        ).fetchall()
    )
    assert statuses == {ids["in_app"]: "delivered", ids["email"]: "queued", skipped: "skipped"}
    # Only the email waits for a worker.
    jobs = owner.execute(
        "select args from public.procrastinate_jobs where args -> 'ids' ? %s or args -> 'ids' ? %s",
        (ids["in_app"], ids["email"]),
    ).fetchall()
    assert jobs == [({"ids": [ids["email"]]},)]
    unread = [
        n["id"] for n in listed.json()["items"] if n["read_at"] is None and n["channel"] == "in_app"
    ]
    assert unread == [ids["in_app"]]
