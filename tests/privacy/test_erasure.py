"""Erasure: `DELETE /v1/me` gives up the person's places at once, ends their sessions, and
the worker's job leaves no trace of their email, phone, name, notes or comments anywhere in
the database, while the figures keep their counts."""

from __future__ import annotations

import httpx
import pytest

from slotease.config import Settings
from tests.auth.support import assert_problem
from tests.factories import Owner
from tests.notifications.support import run_jobs, worker_app
from tests.privacy.arrange import columns_scanned, erase_request, find_markers, seed_person

pytestmark = pytest.mark.anyio


def _counts(owner: Owner, person_id: object) -> tuple[object, ...]:
    row = owner.execute(
        "select (select count(*) from public.appointments where customer_id = %(p)s),"
        " (select count(*) from public.tickets where user_id = %(p)s),"
        " (select sum(rating) from public.feedback where customer_id = %(p)s),"
        " (select count(*) from public.notifications where user_id = %(p)s),"
        " (select count(*) from public.analytics_events),"
        " (select coalesce(sum(total), 0) from public.analytics_daily_service)",
        {"p": person_id},
    ).fetchone()
    assert row is not None
    return tuple(row)


async def test_an_erased_person_appears_nowhere_in_the_database(
    client: httpx.AsyncClient, owner: Owner, settings: Settings
) -> None:
    person = await seed_person(client, owner)
    # The scan is generic: it covers the tables that hold the person, partitions included.
    scanned = {f"{s}.{t}" for s, t, _, _ in columns_scanned(owner)}
    assert {"public.procrastinate_jobs", "auth.users", "public.webhook_deliveries",
            "public.analytics_reports"} <= scanned  # fmt: skip
    assert any(name.startswith("public.audit_log_") for name in scanned)
    assert any(name.startswith("public.notifications_") for name in scanned)
    before = find_markers(owner, person.markers)
    for place in ("auth.users.email", "public.user_profiles.full_name",
                  "public.user_profiles.phone", "public.webhook_deliveries.payload",
                  "public.analytics_reports.content", "public.idempotency_keys.response_body",
                  "public.feedback.comment", "public.notification_preferences.push_token",
                  "public.invitations.email"):  # fmt: skip
        assert any(hit.startswith(place) for hit in before), (place, before)
    assert any(hit.startswith("public.audit_log_") for hit in before), before

    response = await client.request(
        "DELETE", "/v1/me", json=erase_request(), headers=person.user.headers
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"id": str(person.user.id), "status": "erasing"}
    # At once: the places are free again and the sessions are gone.
    statuses = owner.execute(
        "select (select status from public.appointments where id = %s),"
        " (select status from public.tickets where id = %s),"
        " (select count(*) from public.waitlist_entries where user_id = %s"
        "  and status in ('waiting', 'offered'))",
        (person.upcoming_id, person.ticket_id, person.user.id),
    ).fetchone()
    assert statuses == ("cancelled", "cancelled", 0)
    response = await client.post(
        "/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": person.refresh_token},
    )
    assert_problem(response, 401)
    counts = _counts(owner, person.user.id)

    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    erasures = owner.execute(
        "select status::text from public.procrastinate_jobs where task_name = 'gdpr.erase'"
    ).fetchall()
    assert erasures == [("succeeded",)]

    assert find_markers(owner, person.markers) == []
    # The rows and figures stay; only the words went.
    assert _counts(owner, person.user.id)[:3] == counts[:3]
    assert _counts(owner, person.user.id)[4:] == counts[4:]
    response = await client.post(
        "/v1/auth/token",
        json={"grant_type": "password", "email": person.user.email, "password": "x" * 12},
    )
    assert_problem(response, 401)


async def test_a_wrong_password_or_the_last_admin_erases_nothing(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    person = await seed_person(client, owner)
    response = await client.request(
        "DELETE", "/v1/me", json=erase_request("not the password"), headers=person.user.headers
    )
    assert_problem(response, 403)
    owner.execute(
        "insert into public.organization_members (organization_id, user_id, role)"
        " values (%s, %s, 'admin')",
        (person.clinic.org_id, person.user.id),
    )
    owner.execute(
        "delete from public.organization_members where organization_id = %s and user_id = %s",
        (person.clinic.org_id, person.clinic.admin.id),
    )
    response = await client.request(
        "DELETE", "/v1/me", json=erase_request(), headers=person.user.headers
    )
    assert str(person.clinic.org_id) in assert_problem(response, 409)["detail"]
    for body in ({}, {"password": ""}, {"password": "x", "extra": 1}):
        response = await client.request("DELETE", "/v1/me", json=body, headers=person.user.headers)
        assert_problem(response, 422)
    assert owner.execute(
        "select (select status from public.appointments where id = %s),"
        " (select count(*) from app.refresh_tokens where user_id = %s),"
        " (select count(*) from public.procrastinate_jobs where task_name = 'gdpr.erase'"
        "  and args ->> 'user_id' = %s::text)",
        (person.upcoming_id, person.user.id, person.user.id),
    ).fetchone() == ("booked", 1, 0)
