"""Consents: the current decision per purpose with when and how it was made, an append-only
history, and the channels they gate when messages go out."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from slotease.config import Settings
from slotease.notifications.delivery import NO_CONSENT, NO_MARKETING_CONSENT
from tests.appointments.arrange import insert_as_owner, make_clinic, soon
from tests.auth.support import assert_problem
from tests.factories import Owner, make_user
from tests.notifications.support import run_jobs, worker_app

pytestmark = pytest.mark.anyio


async def test_consents_start_from_the_defaults_and_keep_their_history(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner)
    response = await client.get("/v1/me/consents", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == {
        "marketing": {"granted": False, "at": None, "source": None},
        "sms": {"granted": True, "at": None, "source": None},
        "email": {"granted": True, "at": None, "source": None},
        "push": {"granted": True, "at": None, "source": None},
    }
    response = await client.put(
        "/v1/me/consents", json={"marketing": True, "push": False}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    current = response.json()
    assert (current["marketing"]["granted"], current["marketing"]["source"]) == (True, "api")
    assert current["marketing"]["at"] is not None
    assert (current["push"]["granted"], current["sms"]["at"]) == (False, None)
    # The same decision again is no change; a withdrawal is.
    await client.put("/v1/me/consents", json={"marketing": True}, headers=user.headers)
    await client.put("/v1/me/consents", json={"marketing": False}, headers=user.headers)
    response = await client.get("/v1/me/consents/history", headers=user.headers)
    history = [(e["purpose"], e["granted"], e["source"]) for e in response.json()]
    # The first two were one change, at one time.
    assert set(history[:2]) == {("marketing", True, "api"), ("push", False, "api")}
    assert history[2:] == [("marketing", False, "api")]
    other = make_user(owner)
    response = await client.get("/v1/me/consents/history", headers=other.headers)
    assert response.json() == []


async def test_bad_consents_are_refused_and_change_nothing(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner)
    for body in ({"marketing": "maybe"}, {"fax": True}, [True]):
        response = await client.put("/v1/me/consents", json=body, headers=user.headers)
        assert_problem(response, 422)
    assert_problem(await client.put("/v1/me/consents", json={"sms": False}), 401)
    assert owner.execute(
        "select count(*) from public.consent_events where user_id = %s", (user.id,)
    ).fetchone() == (0,)


async def test_the_history_cannot_be_rewritten_even_by_its_owner(
    owner: Owner, app_conninfo: str
) -> None:
    user = make_user(owner)
    owner.execute(
        "insert into public.consent_events (user_id, purpose, granted, source)"
        " values (%s, 'marketing', true, 'web')",
        (user.id,),
    )
    claims = f'{{"sub": "{user.id}", "role": "authenticated"}}'
    with psycopg.connect(app_conninfo) as conn:
        conn.execute("set role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, false)", (claims,))
        for statement in (
            "update public.consent_events set granted = false",
            "delete from public.consent_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
            conn.execute("set role authenticated")
            conn.execute("select set_config('request.jwt.claims', %s, false)", (claims,))


async def test_bulk_messages_need_the_marketing_opt_in_and_channels_their_consent(
    client: httpx.AsyncClient, owner: Owner, settings: Settings
) -> None:
    clinic = make_clinic(owner)
    opted_in, silent, no_email = make_user(owner), make_user(owner), make_user(owner)
    for customer, time in ((opted_in, "10:00"), (silent, "10:30"), (no_email, "11:00")):
        insert_as_owner(owner, clinic, customer, clinic.at(soon(clinic), time))
    await client.put("/v1/me/consents", json={"marketing": True}, headers=opted_in.headers)
    await client.put("/v1/me/consents", json={"email": False}, headers=no_email.headers)
    response = await client.post(
        "/v1/notifications/send-bulk",
        json={"organization_id": str(clinic.org_id), "channels": ["in_app"], "subject": "News",
              "body": "Our new wing opens", "user_ids": [str(opted_in.id), str(silent.id)]},
        headers=clinic.admin.headers,
    )  # fmt: skip
    assert response.status_code == 202, response.text
    response = await client.post(
        "/v1/notifications/send",
        json={"user_id": str(no_email.id), "channels": ["email"], "body": "Your results"},
        headers=clinic.staff.headers,
    )
    assert response.status_code == 202, response.text
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    outcomes = dict(
        owner.execute(
            "select user_id, (status, last_error) from public.notifications"
            " where user_id = any (%s)",
            ([opted_in.id, silent.id, no_email.id],),
        ).fetchall()
    )
    assert outcomes == {
        opted_in.id: ("delivered", None),
        silent.id: ("skipped", NO_MARKETING_CONSENT),
        no_email.id: ("skipped", NO_CONSENT),
    }
