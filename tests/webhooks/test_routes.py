"""Managing webhooks and reading their delivery log: who may, what is validated, what is shown."""

from __future__ import annotations

import uuid

import httpx
import pytest

from slotease.config import Settings
from slotease.kit import crypto
from tests.appointments.arrange import make_clinic
from tests.factories import Owner, make_user, unseal
from tests.webhooks.support import create_webhook

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:9/hooks"


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_webhooks": True})


async def test_create_list_update_and_delete(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    created = await create_webhook(
        client, clinic.admin, clinic.org_id, URL, ["appointment.created", "appointment.created"]
    )
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 40
    assert created["events"] == ["appointment.created"]
    assert (created["url"], created["is_active"]) == (URL, True)
    stored = owner.execute(
        "select secret from public.webhooks where id = %s", (created["id"],)
    ).fetchone()
    assert stored is not None
    # Sealed in the table, to this webhook.
    assert created["secret"].encode() not in stored[0]
    assert unseal(crypto.WEBHOOK_SECRET, created["id"], stored[0]) == created["secret"]

    listed = await client.get(
        f"/v1/organizations/{clinic.org_id}/webhooks", headers=clinic.admin.headers
    )
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["id"] == created["id"]
    assert "secret" not in item

    patched = await client.patch(
        f"/v1/webhooks/{created['id']}",
        json={"events": ["ticket.called", "queue.updated"], "url": URL + "/v2"},
        headers=clinic.admin.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["ticket.called", "queue.updated"]
    assert patched.json()["url"] == URL + "/v2"
    assert "secret" not in patched.json()

    off = await client.patch(
        f"/v1/webhooks/{created['id']}", json={"is_active": False}, headers=clinic.admin.headers
    )
    assert off.json()["is_active"] is False
    assert off.json()["disabled_at"] is not None

    deleted = await client.delete(f"/v1/webhooks/{created['id']}", headers=clinic.admin.headers)
    assert deleted.status_code == 204
    again = await client.delete(f"/v1/webhooks/{created['id']}", headers=clinic.admin.headers)
    assert again.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": URL, "events": ["appointment.booked"]},
        {"url": URL, "events": []},
        {"url": URL, "events": ["notification.created"]},
        {"url": URL},
        {"url": "", "events": ["ticket.called"]},
        {"url": URL, "events": ["ticket.called"], "secret": "mine"},
    ],
)
async def test_bad_bodies_are_422_and_create_nothing(
    client: httpx.AsyncClient, owner: Owner, body: dict[str, object]
) -> None:
    clinic = make_clinic(owner)
    response = await client.post(
        f"/v1/organizations/{clinic.org_id}/webhooks", json=body, headers=clinic.admin.headers
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert owner.execute(
        "select count(*) from public.webhooks where organization_id = %s", (clinic.org_id,)
    ).fetchone() == (0,)


async def test_an_unknown_event_in_an_update_is_422(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    webhook = await create_webhook(client, clinic.admin, clinic.org_id, URL, ["ticket.called"])
    response = await client.patch(
        f"/v1/webhooks/{webhook['id']}", json={"events": ["nope"]}, headers=clinic.admin.headers
    )
    assert response.status_code == 422
    assert owner.execute(
        "select events from public.webhooks where id = %s", (webhook["id"],)
    ).fetchone() == (["ticket.called"],)


async def test_only_admins_manage_webhooks(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    webhook = await create_webhook(client, clinic.admin, clinic.org_id, URL, ["ticket.called"])
    body = {"url": URL, "events": ["ticket.called"]}
    staff = clinic.staff.headers
    assert (
        await client.post(f"/v1/organizations/{clinic.org_id}/webhooks", json=body, headers=staff)
    ).status_code == 403
    assert (
        await client.get(f"/v1/organizations/{clinic.org_id}/webhooks", headers=staff)
    ).status_code == 403
    # Staff cannot see the webhook itself: it is not theirs to know about.
    assert (
        await client.patch(
            f"/v1/webhooks/{webhook['id']}", json={"is_active": False}, headers=staff
        )
    ).status_code == 404
    assert (
        await client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", headers=staff)
    ).status_code == 404
    assert (await client.delete(f"/v1/webhooks/{webhook['id']}", headers=staff)).status_code == 404
    assert (
        await client.post(f"/v1/organizations/{clinic.org_id}/webhooks", json=body)
    ).status_code == 401
    missing = await client.post(
        f"/v1/organizations/{uuid.uuid4()}/webhooks", json=body, headers=clinic.admin.headers
    )
    assert missing.status_code == 404
    assert owner.execute(
        "select is_active from public.webhooks where id = %s", (webhook["id"],)
    ).fetchone() == (True,)


async def test_another_organizations_admin_sees_nothing(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    a, b = make_clinic(owner), make_clinic(owner)
    webhook = await create_webhook(client, a.admin, a.org_id, URL, ["appointment.created"])
    (delivery_id,) = owner.execute(
        "insert into public.webhook_deliveries (organization_id, webhook_id, event, payload)"
        " values (%s, %s, 'appointment.created', '{}') returning id",
        (a.org_id, webhook["id"]),
    ).fetchone() or (None,)
    headers = b.admin.headers

    # Through B's own organization, A's webhook does not exist.
    through_b = await client.get(
        f"/v1/organizations/{b.org_id}/webhooks/{webhook['id']}/deliveries", headers=headers
    )
    assert through_b.status_code == 404
    assert (
        await client.patch(
            f"/v1/webhooks/{webhook['id']}", json={"is_active": False}, headers=headers
        )
    ).status_code == 404
    assert (
        await client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", headers=headers)
    ).status_code == 404
    assert (
        await client.post(
            f"/v1/webhooks/{webhook['id']}/deliveries/{delivery_id}/redeliver", headers=headers
        )
    ).status_code == 404
    assert (
        await client.delete(f"/v1/webhooks/{webhook['id']}", headers=headers)
    ).status_code == 404
    # A's own routes: B's admin is not an admin there (the organization itself is public).
    listed = await client.get(f"/v1/organizations/{a.org_id}/webhooks", headers=headers)
    assert listed.status_code == 403
    assert "items" not in listed.json()
    logged = await client.get(
        f"/v1/organizations/{a.org_id}/webhooks/{webhook['id']}/deliveries", headers=headers
    )
    assert logged.status_code == 403
    assert "items" not in logged.json()
    own = await client.get(f"/v1/organizations/{b.org_id}/webhooks", headers=headers)
    assert own.status_code == 200
    assert own.json()["items"] == []
    assert owner.execute(
        "select is_active from public.webhooks where id = %s", (webhook["id"],)
    ).fetchone() == (True,)


async def test_the_delivery_log_is_paginated_newest_first(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    webhook = await create_webhook(client, clinic.admin, clinic.org_id, URL, ["ticket.called"])
    ids = [
        owner.execute(
            "insert into public.webhook_deliveries"
            " (organization_id, webhook_id, event, payload, created_at, status, attempts,"
            "  response_code, latency_ms)"
            " values (%s, %s, 'ticket.called', '{}', now() - make_interval(mins => %s),"
            "  'delivered', 1, 200, 42) returning id",
            (clinic.org_id, webhook["id"], minutes),
        ).fetchone()[0]  # type: ignore[index]
        for minutes in (3, 2, 1)
    ]
    path = f"/v1/organizations/{clinic.org_id}/webhooks/{webhook['id']}/deliveries"
    first = await client.get(path, params={"limit": 2}, headers=clinic.admin.headers)
    assert first.status_code == 200
    page = first.json()
    assert [d["id"] for d in page["items"]] == [str(ids[2]), str(ids[1])]
    assert page["items"][0]["status"] == "delivered"
    assert (page["items"][0]["response_code"], page["items"][0]["latency_ms"]) == (200, 42)
    assert set(page["items"][0]) >= {
        "attempts", "last_error", "created_at", "delivered_at", "next_attempt_at", "event"
    }  # fmt: skip
    second = await client.get(
        path, params={"limit": 2, "cursor": page["next_cursor"]}, headers=clinic.admin.headers
    )
    assert [d["id"] for d in second.json()["items"]] == [str(ids[0])]
    assert second.json()["next_cursor"] is None
    bad = await client.get(path, params={"cursor": "garbage"}, headers=clinic.admin.headers)
    assert bad.status_code == 422


async def test_api_keys_of_admins_manage_webhooks(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    made = await client.post(
        f"/v1/organizations/{clinic.org_id}/api-keys",
        json={"name": "ci", "role": "admin"},
        headers=clinic.admin.headers,
    )
    key = {"X-API-Key": made.json()["key"]}
    response = await client.post(
        f"/v1/organizations/{clinic.org_id}/webhooks",
        json={"url": URL, "events": ["ticket.called"]},
        headers=key,
    )
    assert response.status_code == 201
    outsider = make_user(owner)
    assert (
        await client.get(f"/v1/organizations/{clinic.org_id}/webhooks", headers=outsider.headers)
    ).status_code == 403
