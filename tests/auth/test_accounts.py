"""Password change, recovery by email link, and email verification, through HTTP."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from slotease.config import Settings
from slotease.kit.secrets import hash_secret
from tests.auth.accounts import (
    PUBLIC_URL,
    audit_events,
    bearer,
    mailed_token,
    password_grant,
)
from tests.auth.support import PASSWORD, assert_problem, new_email, sign_up
from tests.factories import Owner, User, add_member, make_organization, make_service, make_user
from tests.notifications.support import Mailbox, run_jobs, with_smtp, worker_app

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]

NEW_PASSWORD = "a much newer passphrase"


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1]).model_copy(update={"public_url": PUBLIC_URL + "/"})


def user_id_of(session: dict[str, Any]) -> str:
    return str(session["user"]["id"])


# ---------------------------------------------------------------------------------------
# Changing the password.
# ---------------------------------------------------------------------------------------
async def test_changing_the_password_ends_every_other_session(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    current = await sign_up(client)
    email = current["user"]["email"]
    other = (await password_grant(client, email)).json()

    response = await client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(current),
    )

    assert response.status_code == 204
    # The other session's access token and refresh token stop working at once.
    assert_problem(await client.get("/v1/me", headers=bearer(other)), 401)
    # Also on the reads made in one round trip, the public list and an availability miss,
    # whose rows the ended session never sees.
    org_id = make_organization(owner)
    week = {
        "from": str(date.today() + timedelta(days=1)),
        "to": str(date.today() + timedelta(days=7)),
    }
    slots = ("/v1/available-slots", {"service_id": str(make_service(owner, org_id)), **week})
    for path, params in ((f"/v1/organizations/{org_id}/services", {}), slots):
        ended = await client.get(path, params=params, headers=bearer(other))
        assert_problem(ended, 401)
        assert ended.json()["detail"] == "The session has ended; sign in again."
        assert (await client.get(path, params=params, headers=bearer(current))).status_code == 200
    refreshed = await client.post(
        "/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": other["refresh_token"]},
    )
    assert_problem(refreshed, 401)
    # The caller's own session goes on, access and refresh alike.
    assert (await client.get("/v1/me", headers=bearer(current))).status_code == 200
    rotated = await client.post(
        "/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": current["refresh_token"]},
    )
    assert rotated.status_code == 200
    assert_problem(await password_grant(client, email), 401)
    assert (await password_grant(client, email, NEW_PASSWORD)).status_code == 200
    events = [event for event, _ in audit_events(owner, user_id_of(current))]
    assert "password_changed" in events
    assert all(PASSWORD not in str(row) and NEW_PASSWORD not in str(row) for row in events)


async def test_a_wrong_current_password_changes_nothing(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    before = owner.execute(
        "select encrypted_password from auth.users where id = %s", (user_id_of(session),)
    ).fetchone()

    response = await client.post(
        "/v1/auth/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=bearer(session),
    )

    assert_problem(response, 403)
    after = owner.execute(
        "select encrypted_password from auth.users where id = %s", (user_id_of(session),)
    ).fetchone()
    assert after == before


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD},
        {"current_password": "", "new_password": NEW_PASSWORD},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "extra": 1},
    ],
)
async def test_a_password_change_with_bad_input_is_a_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    session = await sign_up(client)
    assert_problem(await client.post("/v1/auth/password", json=body, headers=bearer(session)), 422)
    assert (await password_grant(client, session["user"]["email"])).status_code == 200


async def test_changing_the_password_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 401)


async def test_an_access_token_of_a_logged_out_session_stops_working(
    client: httpx.AsyncClient,
) -> None:
    session = await sign_up(client)
    logout = await client.post("/v1/auth/logout", json={"refresh_token": session["refresh_token"]})
    assert logout.status_code == 204
    assert_problem(await client.get("/v1/me", headers=bearer(session)), 401)


# ---------------------------------------------------------------------------------------
# Recovery.
# ---------------------------------------------------------------------------------------
async def test_recovery_mails_a_single_use_link_that_resets_the_password(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]

    response = await client.post("/v1/auth/recover", json={"email": email.upper()})

    assert response.status_code == 202
    token = await mailed_token(settings, mailbox, email, "reset-password")
    stored = owner.execute(
        "select token_hash, expires_at - created_at from app.account_tokens"
        " where user_id = %s and purpose = 'reset'",
        (user_id_of(session),),
    ).fetchall()
    assert [(hash_, ttl.total_seconds()) for hash_, ttl in stored] == [(hash_secret(token), 1800.0)]
    reset = await client.post("/v1/auth/reset", json={"token": token, "new_password": NEW_PASSWORD})
    assert reset.status_code == 204
    # Every session ends, and the new password signs in.
    assert_problem(await client.get("/v1/me", headers=bearer(session)), 401)
    assert (await password_grant(client, email, NEW_PASSWORD)).status_code == 200
    again = await client.post("/v1/auth/reset", json={"token": token, "new_password": PASSWORD})
    assert_problem(again, 400)
    assert (await password_grant(client, email, NEW_PASSWORD)).status_code == 200
    events = [event for event, _ in audit_events(owner, user_id_of(session))]
    assert events.count("recovery_requested") == 1
    assert events.count("recovery_used") == 1
    audit_text = str(audit_events(owner, user_id_of(session)))
    assert token not in audit_text
    assert hash_secret(token) not in audit_text


async def test_recovery_answers_the_same_for_an_unknown_address(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    session = await sign_up(client)
    known, unknown = [], []
    for _ in range(5):
        started = time.perf_counter()
        known_answer = await client.post(
            "/v1/auth/recover", json={"email": session["user"]["email"]}
        )
        known.append(time.perf_counter() - started)
        started = time.perf_counter()
        unknown_answer = await client.post("/v1/auth/recover", json={"email": new_email()})
        unknown.append(time.perf_counter() - started)
        assert (known_answer.status_code, known_answer.content) == (
            unknown_answer.status_code,
            unknown_answer.content,
        )
        assert known_answer.status_code == 202
        assert known_answer.headers.keys() == unknown_answer.headers.keys()

    # One statement either way: no timing gap large enough to tell the two apart.
    assert abs(sorted(known)[2] - sorted(unknown)[2]) < 0.05
    jobs = owner.execute(
        "select count(*) from public.procrastinate_jobs where task_name = 'auth.send_password_reset'"
    ).fetchone()
    assert jobs == (5,)
    # Each request replaces the previous link: only the latest is live.
    live = owner.execute(
        "select count(*) from app.account_tokens where user_id = %s and purpose = 'reset'"
        " and used_at is null",
        (user_id_of(session),),
    ).fetchone()
    assert live == (1,)


async def test_an_expired_reset_link_is_refused(client: httpx.AsyncClient, owner: Owner) -> None:
    session = await sign_up(client)
    token = "at_expired-for-this-test"
    owner.execute(
        "insert into app.account_tokens (user_id, purpose, token_hash, expires_at)"
        " values (%s, 'reset', %s, now() - interval '1 second')",
        (user_id_of(session), hash_secret(token)),
    )

    response = await client.post(
        "/v1/auth/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert_problem(response, 400)
    assert (await password_grant(client, session["user"]["email"])).status_code == 200
    assert (await client.get("/v1/me", headers=bearer(session))).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/recover", {}),
        ("/v1/auth/recover", {"email": ""}),
        ("/v1/auth/reset", {"token": "x"}),
        ("/v1/auth/reset", {"token": "", "new_password": NEW_PASSWORD}),
        ("/v1/auth/reset", {"token": "x", "new_password": "short"}),
        ("/v1/auth/verify", {}),
        ("/v1/auth/verify", {"token": "x" * 513}),
    ],
)
async def test_account_links_with_bad_input_are_a_422(
    client: httpx.AsyncClient, owner: Owner, path: str, body: dict[str, Any]
) -> None:
    before = owner.execute("select count(*), max(created_at) from app.account_tokens").fetchone()
    assert_problem(await client.post(path, json=body), 422)
    after = owner.execute("select count(*), max(created_at) from app.account_tokens").fetchone()
    assert after == before


async def test_an_unknown_token_is_refused(client: httpx.AsyncClient) -> None:
    reset = await client.post(
        "/v1/auth/reset", json={"token": "at_nothing", "new_password": NEW_PASSWORD}
    )
    assert_problem(reset, 400)
    assert_problem(await client.post("/v1/auth/verify", json={"token": "at_nothing"}), 400)


# ---------------------------------------------------------------------------------------
# Verification.
# ---------------------------------------------------------------------------------------
async def test_sign_up_mails_a_verification_link(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]
    me = (await client.get("/v1/me", headers=bearer(session))).json()
    assert me["email_verified"] is False

    token = await mailed_token(settings, mailbox, email, "verify-email")
    response = await client.post("/v1/auth/verify", json={"token": token})

    assert response.status_code == 204
    me = (await client.get("/v1/me", headers=bearer(session))).json()
    assert me["email_verified"] is True
    assert_problem(await client.post("/v1/auth/verify", json={"token": token}), 400)
    assert "email_verified" in [event for event, _ in audit_events(owner, user_id_of(session))]


async def test_resending_replaces_the_link_and_a_verified_address_gets_none(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]
    first = owner.execute(
        "select token_hash from app.account_tokens where user_id = %s", (user_id_of(session),)
    ).fetchone()
    owner.execute("delete from public.procrastinate_jobs")

    resent = await client.post("/v1/auth/verify/resend", headers=bearer(session))

    assert resent.status_code == 202
    token = await mailed_token(settings, mailbox, email, "verify-email")
    assert first is not None
    assert hash_secret(token) != first[0]
    assert (await client.post("/v1/auth/verify", json={"token": token})).status_code == 204
    mailbox.messages.clear()
    assert (await client.post("/v1/auth/verify/resend", headers=bearer(session))).status_code == 202
    assert owner.execute(
        "select count(*) from public.procrastinate_jobs where status = 'todo'"
    ).fetchone() == (0,)


async def test_resending_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/auth/verify/resend"), 401)


async def test_email_notifications_reach_only_verified_addresses(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    unverified = await sign_up(client)
    verified = await sign_up(client)
    owner.execute(
        "update auth.users set email_confirmed_at = now() where id = %s", (user_id_of(verified),)
    )
    for person in (unverified, verified):
        # Members, so that the organization deals with them.
        add_member(owner, org_id, User(id=person["user"]["id"], email="", token=""), "staff")
    owner.execute("delete from public.procrastinate_jobs")
    for person in (unverified, verified):
        sent = await client.post(
            "/v1/notifications/send",
            json={
                "user_id": user_id_of(person),
                "channels": ["email"],
                "subject": "Hello",
                "body": "A message",
            },
            headers=admin.headers,
        )
        assert sent.status_code == 202, sent.text

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    assert [recipients for recipients, _ in mailbox.messages] == [[verified["user"]["email"]]]
