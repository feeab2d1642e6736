"""Expired credentials are purged by the periodic job, without anyone calling the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from slotease.config import Settings
from tests.appointments.arrange import make_clinic, soon
from tests.factories import Owner, make_user
from tests.notifications.support import run_periodic

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]

PURGE = "ops.purge_expired_keys"


@pytest.fixture
def clean_jobs(owner: Owner) -> None:
    owner.execute("delete from public.procrastinate_jobs")


def _keys(owner: Owner, principal: str) -> set[str]:
    rows = owner.execute(
        "select idempotency_key from public.idempotency_keys where principal = %s", (principal,)
    ).fetchall()
    return {key for (key,) in rows}


async def test_expired_idempotency_keys_are_purged(
    client: httpx.AsyncClient, owner: Owner, settings: Settings
) -> None:
    clinic = make_clinic(owner, capacity=5)
    customer = make_user(owner)
    for key, hour in (("old", "10:00"), ("live", "11:00")):
        booked = await client.post(
            "/v1/appointments",
            json={
                "service_id": str(clinic.service_id),
                "starts_at": clinic.at(soon(clinic), hour).isoformat(),
            },
            headers={**customer.headers, "Idempotency-Key": key},
        )
        assert booked.status_code == 201, booked.text
    owner.execute(
        "update public.idempotency_keys set expires_at = now() - interval '1 second'"
        " where principal = %s and idempotency_key = 'old'",
        (str(customer.id),),
    )

    await run_periodic(settings, PURGE)

    assert _keys(owner, str(customer.id)) == {"live"}


async def _sign_up(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/v1/auth/signup",
        json={
            "email": f"user-{uuid.uuid4().hex[:10]}@example.com",
            "password": "correct horse battery",
            "full_name": "Refresh Tester",
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": token}
    )


def _tokens_of(owner: Owner, user_id: str) -> int:
    row = owner.execute(
        "select count(*) from app.refresh_tokens where user_id = %s", (user_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


async def test_refresh_token_families_are_purged_once_all_expired(
    client: httpx.AsyncClient, owner: Owner, settings: Settings
) -> None:
    gone = await _sign_up(client)
    owner.execute(
        "update app.refresh_tokens set expires_at = now() - interval '1 second' where user_id = %s",
        (gone["user"]["id"],),
    )
    # A family whose spent token has expired while its successor lives on.
    kept = await _sign_up(client)
    spent = kept["refresh_token"]
    assert (await _refresh(client, spent)).status_code == 200
    owner.execute(
        "update app.refresh_tokens set expires_at = now() - interval '1 second'"
        " where user_id = %s and used_at is not null",
        (kept["user"]["id"],),
    )

    await run_periodic(settings, PURGE)

    assert _tokens_of(owner, gone["user"]["id"]) == 0
    assert _tokens_of(owner, kept["user"]["id"]) == 2
    # The spent token is still recognized: replaying it revokes its family.
    assert (await _refresh(client, spent)).status_code == 401
    revoked = owner.execute(
        "select count(*) from app.refresh_tokens where user_id = %s and revoked_at is null",
        (kept["user"]["id"],),
    ).fetchone()
    assert revoked == (0,)
