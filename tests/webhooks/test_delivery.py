"""Webhook deliveries end to end: the request records them in its own transaction, the worker
posts them to a local receiver that checks the signature as a customer would."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from slotease.config import Settings
from slotease.jobs.queues import WEBHOOKS, priority_of
from slotease.kit import crypto
from slotease.kit.events import DomainEvent, EventBus
from tests.appointments.arrange import Clinic, make_clinic, soon
from tests.factories import Owner, add_member, make_user, unseal
from tests.notifications.support import jobs, run_jobs, worker_app
from tests.webhooks.support import (
    Receiver,
    body_of,
    book,
    create_webhook,
    deliveries,
    make_due,
    receiver_server,
    verify,
    webhook_state,
)

pytestmark = pytest.mark.anyio

TASK = "webhooks.deliver"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with receiver_server(receiver) as url:
        yield receiver, url


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"allow_private_webhooks": True, "webhook_timeout_seconds": 1.0}
    )


@pytest.fixture(autouse=True)
def clean(owner: Owner) -> None:
    owner.execute("delete from public.procrastinate_jobs")


async def subscribed(
    client: httpx.AsyncClient, owner: Owner, endpoint: tuple[Receiver, str], script: list[str]
) -> tuple[Clinic, dict[str, Any], Receiver]:
    """A clinic with a webhook on appointment.created, and the receiver answering `script`."""
    receiver, url = endpoint
    clinic = make_clinic(owner)
    webhook = await create_webhook(
        client, clinic.admin, clinic.org_id, url, ["appointment.created"]
    )
    receiver.reset([webhook["secret"]])
    receiver.script.extend(script)
    return clinic, webhook, receiver


async def test_a_booking_is_delivered_once_signed_to_the_wanted_webhook_only(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    receiver, url = endpoint
    clinic, other = make_clinic(owner), make_clinic(owner)
    wanted = await create_webhook(
        client, clinic.admin, clinic.org_id, url, ["appointment.created", "ticket.called"]
    )
    unwanted = await create_webhook(client, clinic.admin, clinic.org_id, url, ["ticket.called"])
    elsewhere = await create_webhook(
        client, other.admin, other.org_id, url, ["appointment.created"]
    )
    receiver.reset([wanted["secret"]])

    appointment = await book(client, owner, clinic, "10:00", notes="wheelchair access")

    assert len(deliveries(owner, wanted["id"])) == 1
    # The kept payload holds the notes sealed; the receiver gets them in plaintext.
    row = owner.execute(
        "select payload from public.webhook_deliveries where webhook_id = %s", (wanted["id"],)
    ).fetchone()
    assert row is not None
    kept = row[0]
    assert "wheelchair" not in str(kept)
    assert unseal(crypto.NOTES, appointment["id"], base64.b64decode(kept["notes"])) == (
        "wheelchair access"
    )
    assert deliveries(owner, unwanted["id"]) == []
    assert deliveries(owner, elsewhere["id"]) == []
    assert [j[1] for j in jobs(owner, TASK)] == [TASK]

    async with worker_app(settings) as (app, _):
        await run_jobs(app)
        await run_jobs(app)

    (request,) = receiver.requests
    assert request["ok"], "the receiver could not verify the signature"
    ((delivery_id, event, status, attempts, code, latency, error, next_at, delivered_at, _),) = (
        deliveries(owner, wanted["id"])
    )
    headers = request["headers"]
    assert headers["X-SlotEase-Event"] == "appointment.created"
    assert headers["X-SlotEase-Delivery"] == str(delivery_id)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("SlotEase-Webhooks/")
    assert headers["X-SlotEase-Signature"].count("v1=") == 1
    body = body_of(request)
    assert body["id"] == str(delivery_id)
    assert body["event"] == "appointment.created"
    assert body["organization_id"] == str(clinic.org_id)
    assert body["data"]["id"] == appointment["id"]
    assert body["data"]["status"] == "booked"
    assert body["data"]["notes"] == "wheelchair access"
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert (event, status, attempts, code, error, next_at) == (
        "appointment.created", "delivered", 1, 200, None, None
    )  # fmt: skip
    assert latency is not None
    assert latency >= 0
    assert delivered_at is not None
    assert [j[2] for j in jobs(owner, TASK)] == ["succeeded"]


async def test_each_listening_webhook_gets_a_delivery_and_its_own_first_attempt(
    client: httpx.AsyncClient, owner: Owner, endpoint: tuple[Receiver, str]
) -> None:
    """The deliveries and their jobs are recorded by one statement, which the booking sends
    with its INSERT: each job locked to its own delivery, at a first attempt's priority."""
    clinic = make_clinic(owner)
    hooks = [
        await create_webhook(
            client, clinic.admin, clinic.org_id, endpoint[1], ["appointment.created"]
        )
        for _ in range(2)
    ]

    await book(client, owner, clinic, "09:00")

    recorded = {str(deliveries(owner, hook["id"])[0][0]) for hook in hooks}
    assert len(recorded) == 2
    rows = owner.execute(
        "select args ->> 'delivery_id', lock, queueing_lock, queue_name, priority"
        " from public.procrastinate_jobs where task_name = %s",
        (TASK,),
    ).fetchall()
    assert {row[0] for row in rows} == recorded
    for delivery_id, lock, queueing_lock, queue, priority in rows:
        assert lock == queueing_lock == f"webhook:{delivery_id}"
        assert (queue, priority) == (WEBHOOKS, priority_of(WEBHOOKS, retry=False))


async def test_a_rolled_back_booking_records_and_enqueues_nothing(
    client: httpx.AsyncClient, owner: Owner, endpoint: tuple[Receiver, str], bus: EventBus
) -> None:
    async def fail_after_the_others(_: object, event: DomainEvent) -> None:
        raise RuntimeError(f"refusing {event.name}")

    clinic = make_clinic(owner)
    webhook = await create_webhook(
        client, clinic.admin, clinic.org_id, endpoint[1], ["appointment.created"]
    )
    unsubscribe = bus.subscribe_transactional(fail_after_the_others)
    try:
        response = await client.post(
            "/v1/appointments",
            json={
                "service_id": str(clinic.service_id),
                "starts_at": clinic.at(soon(clinic), "11:00").isoformat(),
            },
            headers=make_user(owner).headers,
        )
    finally:
        unsubscribe()
    assert response.status_code == 500
    assert deliveries(owner, webhook["id"]) == []
    assert jobs(owner, TASK) == []


async def test_a_failed_attempt_is_retried_later_until_it_succeeds(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    clinic, webhook, receiver = await subscribed(client, owner, endpoint, ["500"])
    owner.execute(
        "update public.webhooks set consecutive_failures = 2 where id = %s", (webhook["id"],)
    )
    await book(client, owner, clinic, "12:00")

    async with worker_app(settings) as (app, _):
        await run_jobs(app)
        ((_, _, status, attempts, code, _, error, next_at, _, _),) = deliveries(
            owner, webhook["id"]
        )
        assert (status, attempts, code, error) == ("pending", 1, 500, "HTTP 500")
        assert next_at > datetime.now(UTC)
        waiting = [j for j in jobs(owner, TASK) if j[2] == "todo"]
        assert len(waiting) == 1
        assert waiting[0][4] == next_at
        # The next attempt waits behind every first attempt.
        assert owner.execute(
            "select queue_name, priority from public.procrastinate_jobs where id = %s",
            (waiting[0][0],),
        ).fetchone() == (WEBHOOKS, priority_of(WEBHOOKS, retry=True))
        await run_jobs(app)  # not due yet: nothing is sent
        assert len(receiver.requests) == 1
        # Still inside its retry window: nothing counts against the webhook yet.
        assert webhook_state(owner, webhook["id"]) == (True, None, 2)

        make_due(owner)
        await run_jobs(app)

    assert [r["ok"] for r in receiver.requests] == [True, True]
    ((_, _, status, attempts, code, _, error, next_at, delivered_at, _),) = deliveries(
        owner, webhook["id"]
    )
    assert (status, attempts, code, error, next_at) == ("delivered", 2, 200, None, None)
    assert delivered_at is not None
    # A success ends the run of failures.
    assert webhook_state(owner, webhook["id"]) == (True, None, 0)


async def test_a_slow_endpoint_times_out_and_is_retried(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    clinic, webhook, _receiver = await subscribed(client, owner, endpoint, ["slow"])
    await book(client, owner, clinic, "12:30")

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    ((_, _, status, attempts, code, latency, error, next_at, _, _),) = deliveries(
        owner, webhook["id"]
    )
    assert (status, attempts, code, error) == ("pending", 1, None, "Timed out.")
    assert latency >= 900
    assert next_at is not None


async def test_persistent_failure_disables_the_webhook_and_tells_the_admins(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    clinic, webhook, _receiver = await subscribed(client, owner, endpoint, ["500"])
    second_admin = make_user(owner)
    add_member(owner, clinic.org_id, second_admin, "admin")
    # Two earlier deliveries already failed for their whole window.
    owner.execute(
        "update public.webhooks set consecutive_failures = 2 where id = %s", (webhook["id"],)
    )
    await book(client, owner, clinic, "13:00")
    # This one has been failing for a day: the retry window is over.
    owner.execute(
        "update public.webhook_deliveries set created_at = now() - interval '25 hours'"
        " where webhook_id = %s",
        (webhook["id"],),
    )

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    ((_, _, status, attempts, code, _, _, next_at, _, _),) = deliveries(owner, webhook["id"])
    assert (status, attempts, code, next_at) == ("failed", 1, 500, None)
    assert [j[2] for j in jobs(owner, TASK)] == ["succeeded"]  # no further attempt
    is_active, disabled_at, failures = webhook_state(owner, webhook["id"])
    assert (is_active, failures) == (False, 3)
    assert disabled_at is not None
    told = owner.execute(
        "select user_id, channel, status, subject, data->>'webhook_id' from public.notifications"
        " where template = 'webhook.disabled' order by user_id",
    ).fetchall()
    assert sorted((row[0] for row in told), key=str) == sorted(
        [clinic.admin.id, second_admin.id], key=str
    )
    assert {row[1:3] for row in told} == {("in_app", "delivered")}
    assert {row[4] for row in told} == {webhook["id"]}
    assert clinic.staff.id not in {row[0] for row in told}

    # A disabled webhook receives nothing more.
    await book(client, owner, clinic, "14:00")
    assert len(deliveries(owner, webhook["id"])) == 1


async def test_410_gone_disables_the_webhook_at_once(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    clinic, webhook, _receiver = await subscribed(client, owner, endpoint, ["410"])
    await book(client, owner, clinic, "15:00")

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    ((_, _, status, attempts, code, _, _, next_at, _, _),) = deliveries(owner, webhook["id"])
    assert (status, attempts, code, next_at) == ("failed", 1, 410, None)
    is_active, disabled_at, _ = webhook_state(owner, webhook["id"])
    assert is_active is False
    assert disabled_at is not None
    (reason,) = owner.execute(
        "select data->>'reason' from public.notifications"
        " where template = 'webhook.disabled' and user_id = %s",
        (clinic.admin.id,),
    ).fetchone() or (None,)
    assert reason is not None
    assert "410" in reason

    listed = await client.get(
        f"/v1/organizations/{clinic.org_id}/webhooks", headers=clinic.admin.headers
    )
    (item,) = listed.json()["items"]
    assert item["is_active"] is False
    assert item["disabled_at"] is not None
    turned_on = await client.patch(
        f"/v1/webhooks/{webhook['id']}", json={"is_active": True}, headers=clinic.admin.headers
    )
    assert turned_on.status_code == 200
    assert (turned_on.json()["is_active"], turned_on.json()["disabled_at"]) == (True, None)


async def test_during_a_rotation_both_secrets_sign(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    clinic, webhook, receiver = await subscribed(client, owner, endpoint, [])
    old_secret = webhook["secret"]
    rotated = await client.post(
        f"/v1/webhooks/{webhook['id']}/rotate-secret", headers=clinic.admin.headers
    )
    assert rotated.status_code == 201, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != old_secret
    expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    assert 23.9 * 3600 < (expires - datetime.now(UTC)).total_seconds() <= 24 * 3600

    # A receiver still configured with the old secret accepts the delivery.
    receiver.reset([old_secret])
    await book(client, owner, clinic, "09:00")
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    (request,) = receiver.requests
    assert request["ok"]
    header = request["headers"]["X-SlotEase-Signature"]
    assert header.count("v1=") == 2
    assert verify(header, request["body"], [new_secret], time.time())

    # After the overlap only the new secret signs.
    owner.execute(
        "update public.webhooks set previous_secret_expires_at = now() - interval '1 second'"
        " where id = %s",
        (webhook["id"],),
    )
    receiver.reset([new_secret])
    await book(client, owner, clinic, "09:30")
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    (request,) = receiver.requests
    header = request["headers"]["X-SlotEase-Signature"]
    assert request["ok"]
    assert header.count("v1=") == 1
    assert not verify(header, request["body"], [old_secret], time.time())


async def test_redelivery_sends_the_same_delivery_again_now(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    clinic, webhook, receiver = await subscribed(client, owner, endpoint, [])
    await book(client, owner, clinic, "16:00")
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
        (delivery_id, *_) = deliveries(owner, webhook["id"])[0]

        response = await client.post(
            f"/v1/webhooks/{webhook['id']}/deliveries/{delivery_id}/redeliver",
            headers=clinic.admin.headers,
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
        assert response.json()["id"] == str(delivery_id)
        await run_jobs(app)

    assert [r["headers"]["X-SlotEase-Delivery"] for r in receiver.requests] == [
        str(delivery_id)
    ] * 2
    assert all(r["ok"] for r in receiver.requests)
    ((_, _, status, attempts, *_),) = deliveries(owner, webhook["id"])
    assert (status, attempts) == ("delivered", 2)


async def test_redelivery_replaces_a_waiting_retry(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, endpoint: tuple[Receiver, str]
) -> None:
    clinic, webhook, receiver = await subscribed(client, owner, endpoint, ["500"])
    await book(client, owner, clinic, "16:30")
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
        (delivery_id, *_) = deliveries(owner, webhook["id"])[0]
        response = await client.post(
            f"/v1/webhooks/{webhook['id']}/deliveries/{delivery_id}/redeliver",
            headers=clinic.admin.headers,
        )
        assert response.status_code == 202
        waiting = [j for j in jobs(owner, TASK) if j[2] == "todo"]
        assert len(waiting) == 1
        assert waiting[0][4] is None
        await run_jobs(app)

    assert len(receiver.requests) == 2
    assert deliveries(owner, webhook["id"])[0][2:4] == ("delivered", 2)
    assert [j for j in jobs(owner, TASK) if j[2] == "todo"] == []
