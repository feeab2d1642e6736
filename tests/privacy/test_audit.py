"""The audit trail an organization's admins read: who changed what and when, filtered and
paged, with no secret, hash or erased person in it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from slotease.config import Settings
from tests.appointments.arrange import make_clinic
from tests.auth.support import assert_problem
from tests.factories import Owner, make_user
from tests.notifications.support import run_jobs, worker_app
from tests.privacy.arrange import erase_request, seed_person

pytestmark = pytest.mark.anyio


def _audit(org_id: object) -> str:
    return f"/v1/organizations/{org_id}/audit"


async def _pages(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                 **query: Any) -> list[dict[str, Any]]:  # fmt: skip
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_admins_read_who_changed_what_without_secrets(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    started = datetime.now(UTC)
    response = await client.patch(
        f"/v1/services/{clinic.service_id}", json={"capacity": 3}, headers=clinic.admin.headers
    )
    assert response.status_code == 200, response.text
    owner.execute(
        "insert into public.webhooks (organization_id, url, events, secret)"
        " values (%s, 'https://hooks.invalid/x', '{appointment.created}', 'whsec_topsecret')",
        (clinic.org_id,),
    )
    response = await client.get(_audit(clinic.org_id), headers=clinic.admin.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert "whsec_topsecret" not in response.text
    webhook = next(i for i in items if i["table"] == "webhooks")
    assert webhook["operation"] == "INSERT"
    assert webhook["changes"]["secret"] == "[redacted]"
    update = next(i for i in items if i["table"] == "services" and i["operation"] == "UPDATE")
    assert update["actor_id"] == str(clinic.admin.id)
    assert update["row_id"] == str(clinic.service_id)
    assert update["changes"]["capacity"] == {"old": 1, "new": 3}
    assert set(update) == {"id", "at", "actor_id", "table", "operation", "row_id", "changes"}
    ats = [i["at"] for i in items]
    assert ats == sorted(ats, reverse=True)

    by_admin = await _pages(client, _audit(clinic.org_id), clinic.admin.headers,
                            actor_id=str(clinic.admin.id), limit=1)  # fmt: skip
    assert by_admin
    assert {i["actor_id"] for i in by_admin} == {str(clinic.admin.id)}
    services = await _pages(client, _audit(clinic.org_id), clinic.admin.headers,
                            table="services", limit=1)  # fmt: skip
    assert {i["table"] for i in services} == {"services"}
    assert len({i["id"] for i in services}) == len(services) >= 2
    everything = await _pages(client, _audit(clinic.org_id), clinic.admin.headers, limit=2)
    assert [i["id"] for i in everything] == [i["id"] for i in items]
    recent = await _pages(client, _audit(clinic.org_id), clinic.admin.headers,
                          **{"from": started.isoformat()})  # fmt: skip
    assert {i["table"] for i in recent} == {"services", "webhooks"}
    earlier = await _pages(client, _audit(clinic.org_id), clinic.admin.headers,
                           to=(started - timedelta(hours=1)).isoformat())  # fmt: skip
    assert earlier == []


async def test_only_the_organizations_admins_read_its_trail(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    assert_problem(await client.get(_audit(clinic.org_id), headers=clinic.staff.headers), 403)
    stranger = make_user(owner)
    # The directory shows the organization to anyone: its trail is refused, not hidden.
    assert_problem(await client.get(_audit(clinic.org_id), headers=stranger.headers), 403)
    assert_problem(await client.get(_audit(uuid.uuid4()), headers=clinic.admin.headers), 404)
    assert_problem(await client.get(_audit(clinic.org_id)), 401)
    for query in ({"cursor": "nope"}, {"from": "yesterday"}, {"limit": 0},
                  {"actor_id": "me"}, {"cursor": "WyJ4IiwieSJd"}):  # fmt: skip
        response = await client.get(
            _audit(clinic.org_id), params=query, headers=clinic.admin.headers
        )
        assert_problem(response, 422)


async def test_an_erased_person_is_gone_from_the_trail(
    client: httpx.AsyncClient, owner: Owner, settings: Settings
) -> None:
    person = await seed_person(client, owner)
    response = await client.get(_audit(person.clinic.org_id), headers=person.clinic.admin.headers)
    # Their name is in the trail's copies of the messages sent to them (their notes are there
    # sealed, as the tables hold them).
    assert person.full_name in response.text
    assert person.notes not in response.text
    response = await client.request(
        "DELETE", "/v1/me", json=erase_request(), headers=person.user.headers
    )
    assert response.status_code == 202
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    trail = await _pages(client, _audit(person.clinic.org_id), person.clinic.admin.headers)
    text = str(trail)
    assert all(marker not in text for marker in person.markers.values())
    # What happened is still there: the bookings and their cancellation.
    operations = {(i["table"], i["operation"]) for i in trail}
    assert {("appointments", "INSERT"), ("appointments", "UPDATE"), ("feedback", "INSERT")} <= (
        operations
    )
