"""TOTP multi-factor sign-in, recovery codes, authentication events in the audit log, and
organizations that require MFA of their staff and admins, through HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp
import pytest

from slotease.auth.mfa import hash_recovery_code
from slotease.kit.secrets import hash_secret
from tests.auth.accounts import (
    audit_events,
    bearer,
    current_code,
    enable_mfa,
    password_grant,
)
from tests.auth.support import PASSWORD, assert_problem, sign_up
from tests.factories import Owner, User, add_member, make_organization, make_user

pytestmark = pytest.mark.anyio

MFA_REQUIRED = "https://slotease.dev/problems/mfa-required"


async def mfa_grant(client: httpx.AsyncClient, mfa_token: str, code: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"grant_type": "mfa", "mfa_token": mfa_token, "code": code}
    )


async def mfa_step(client: httpx.AsyncClient, email: str) -> str:
    response = await password_grant(client, email)
    problem = assert_problem(response, 401)
    assert problem["type"] == MFA_REQUIRED
    token: str = problem["mfa_token"]
    return token


# ---------------------------------------------------------------------------------------
# Enrollment.
# ---------------------------------------------------------------------------------------
async def test_enrollment_gives_a_secret_uri_and_hashed_recovery_codes(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)

    response = await client.post("/v1/me/mfa", headers=bearer(session))

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri", "recovery_codes"}
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert parsed.secret == body["secret"]
    assert parsed.issuer == "SlotEase"
    assert parsed.name == session["user"]["email"]
    assert len(set(body["recovery_codes"])) == 10
    stored = owner.execute(
        "select code_hash from app.mfa_recovery_codes where user_id = %s",
        (session["user"]["id"],),
    ).fetchall()
    assert {row[0] for row in stored} == {hash_recovery_code(c) for c in body["recovery_codes"]}
    # Not on until a code confirms it: the password alone still signs in.
    assert (await password_grant(client, session["user"]["email"])).status_code == 200
    me = (await client.get("/v1/me", headers=bearer(session))).json()
    assert me["mfa_enabled"] is False


async def test_confirming_needs_a_valid_code_and_turns_mfa_on(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    enrollment = (await client.post("/v1/me/mfa", headers=bearer(session))).json()

    if pyotp.TOTP(enrollment["secret"]).verify("000000", valid_window=1):
        pytest.skip("000000 happens to be a code of this time")
    wrong = await client.post(
        "/v1/me/mfa/confirm", json={"code": "000000"}, headers=bearer(session)
    )
    assert_problem(wrong, 403)
    right = await client.post(
        "/v1/me/mfa/confirm",
        json={"code": current_code(enrollment["secret"])},
        headers=bearer(session),
    )

    assert right.status_code == 204
    me = (await client.get("/v1/me", headers=bearer(session))).json()
    assert me["mfa_enabled"] is True
    again = await client.post("/v1/me/mfa", headers=bearer(session))
    assert_problem(again, 409)
    assert "mfa_enabled" in [event for event, _ in audit_events(owner, session["user"]["id"])]


async def test_confirming_without_an_enrollment_is_a_conflict(client: httpx.AsyncClient) -> None:
    session = await sign_up(client)
    response = await client.post(
        "/v1/me/mfa/confirm", json={"code": "123456"}, headers=bearer(session)
    )
    assert_problem(response, 409)


@pytest.mark.parametrize("body", [{}, {"code": "12"}, {"code": "1" * 33}, {"code": 123456}])
async def test_mfa_routes_reject_bad_input(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    session = await sign_up(client)
    for method in ("POST", "DELETE"):
        path = "/v1/me/mfa/confirm" if method == "POST" else "/v1/me/mfa"
        response = await client.request(method, path, json=body, headers=bearer(session))
        assert_problem(response, 422)


async def test_mfa_routes_need_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/me/mfa"), 401)
    assert_problem(await client.post("/v1/me/mfa/confirm", json={"code": "123456"}), 401)
    assert_problem(await client.request("DELETE", "/v1/me/mfa", json={"code": "123456"}), 401)


# ---------------------------------------------------------------------------------------
# Signing in with a second factor.
# ---------------------------------------------------------------------------------------
async def test_sign_in_with_mfa_takes_the_password_then_a_code(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]
    enrollment = await enable_mfa(client, session)

    mfa_token = await mfa_step(client, email)
    code = current_code(enrollment["secret"])
    signed_in = await mfa_grant(client, mfa_token, code)

    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"] == session["user"]
    assert (await client.get("/v1/me", headers=bearer(signed_in.json()))).status_code == 200
    # The step's token is spent, and the same code is not accepted twice.
    assert_problem(await mfa_grant(client, mfa_token, code), 401)
    replay = await mfa_grant(client, await mfa_step(client, email), code)
    assert_problem(replay, 401)
    stored = owner.execute(
        "select token_hash from app.account_tokens where purpose = 'mfa' and user_id = %s",
        (session["user"]["id"],),
    ).fetchall()
    assert (hash_secret(mfa_token),) in stored
    events = audit_events(owner, session["user"]["id"])
    assert ("sign_in", "totp") in [(event, row.get("factor")) for event, row in events]
    assert enrollment["secret"] not in str(events)
    assert code not in str([row for _, row in events])


async def test_a_recovery_code_signs_in_once(client: httpx.AsyncClient) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]
    enrollment = await enable_mfa(client, session)
    code = enrollment["recovery_codes"][0]

    first = await mfa_grant(client, await mfa_step(client, email), code.upper())
    second = await mfa_grant(client, await mfa_step(client, email), code)

    assert first.status_code == 200, first.text
    assert_problem(second, 401)
    other = await mfa_grant(client, await mfa_step(client, email), enrollment["recovery_codes"][1])
    assert other.status_code == 200


async def test_the_mfa_step_dies_after_a_few_wrong_codes(client: httpx.AsyncClient) -> None:
    session = await sign_up(client)
    enrollment = await enable_mfa(client, session)
    mfa_token = await mfa_step(client, session["user"]["email"])

    for _ in range(5):
        assert_problem(await mfa_grant(client, mfa_token, "not-a-code"), 401)
    response = await mfa_grant(client, mfa_token, current_code(enrollment["secret"]))

    problem = assert_problem(response, 401)
    assert "sign in with your password again" in problem["detail"]


async def test_an_expired_mfa_step_is_refused(client: httpx.AsyncClient, owner: Owner) -> None:
    session = await sign_up(client)
    enrollment = await enable_mfa(client, session)
    mfa_token = await mfa_step(client, session["user"]["email"])
    owner.execute(
        "update app.account_tokens set expires_at = now() where token_hash = %s",
        (hash_secret(mfa_token),),
    )

    assert_problem(await mfa_grant(client, mfa_token, current_code(enrollment["secret"])), 401)


async def test_a_wrong_password_never_reaches_the_mfa_step(client: httpx.AsyncClient) -> None:
    session = await sign_up(client)
    await enable_mfa(client, session)

    problem = assert_problem(
        await password_grant(client, session["user"]["email"], "wrong password"), 401
    )

    assert "mfa_token" not in problem
    assert problem["type"] != MFA_REQUIRED


async def test_turning_mfa_off_needs_a_code(client: httpx.AsyncClient, owner: Owner) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]
    enrollment = await enable_mfa(client, session)

    wrong = await client.request(
        "DELETE", "/v1/me/mfa", json={"code": "not-a-code"}, headers=bearer(session)
    )
    assert_problem(wrong, 403)
    assert_problem(await password_grant(client, email), 401)
    right = await client.request(
        "DELETE",
        "/v1/me/mfa",
        json={"code": current_code(enrollment["secret"])},
        headers=bearer(session),
    )

    assert right.status_code == 204
    assert (await password_grant(client, email)).status_code == 200
    assert owner.execute(
        "select count(*) from app.mfa_recovery_codes where user_id = %s",
        (session["user"]["id"],),
    ).fetchone() == (0,)
    again = await client.request(
        "DELETE", "/v1/me/mfa", json={"code": "123456"}, headers=bearer(session)
    )
    assert_problem(again, 409)
    assert "mfa_disabled" in [event for event, _ in audit_events(owner, session["user"]["id"])]


async def test_malformed_mfa_grants_are_a_422(client: httpx.AsyncClient) -> None:
    for body in (
        {"grant_type": "mfa", "mfa_token": "x"},
        {"grant_type": "mfa", "code": "123456"},
        {"grant_type": "mfa", "mfa_token": "", "code": "123456"},
    ):
        assert_problem(await client.post("/v1/auth/token", json=body), 422)


# ---------------------------------------------------------------------------------------
# Authentication events.
# ---------------------------------------------------------------------------------------
async def test_sign_in_failures_and_locks_are_audited_without_secrets(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]

    for _ in range(5):
        assert_problem(await password_grant(client, email, "guess-the-password"), 401)
    assert_problem(await password_grant(client, email), 429)

    events = audit_events(owner, session["user"]["id"])
    names = [event for event, _ in events]
    assert names.count("sign_in_failed") == 5
    assert names.count("sign_in_locked") == 1
    assert "guess-the-password" not in str(events)
    assert PASSWORD not in str(events)
    assert all(row.get("address") for event, row in events if event.startswith("sign_in_"))


# ---------------------------------------------------------------------------------------
# Organizations requiring MFA of their staff and admins.
# ---------------------------------------------------------------------------------------
def require_mfa(owner: Owner, org_id: Any) -> None:
    owner.execute(
        "update public.organizations set settings = settings || '{\"require_mfa\": true}'"
        " where id = %s",
        (org_id,),
    )


async def test_an_admin_without_mfa_cannot_act_as_admin_where_it_is_required(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    admin = User(id=session["user"]["id"], email=session["user"]["email"], token="")
    org_id = make_organization(owner, admin)
    require_mfa(owner, org_id)
    rename = {"name": "Renamed Clinic"}

    refused = await client.patch(
        f"/v1/organizations/{org_id}", json=rename, headers=bearer(session)
    )

    problem = assert_problem(refused, 403)
    assert problem["type"].endswith("/mfa-enrollment-required")
    assert "multi-factor" in problem["detail"]
    name = owner.execute("select name from public.organizations where id = %s", (org_id,))
    assert name.fetchone() == ("Test Clinic",)
    # Once MFA is on, the same admin acts again (with a session that went through it).
    enrollment = await enable_mfa(client, session)
    assert (
        await client.patch(f"/v1/organizations/{org_id}", json=rename, headers=bearer(session))
    ).status_code == 200
    mfa_session = await mfa_grant(
        client, await mfa_step(client, admin.email), current_code(enrollment["secret"])
    )
    assert mfa_session.status_code == 200


async def test_staff_without_mfa_see_the_organization_as_customers_do(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    staff = make_user(owner)
    org_id = make_organization(owner, admin)
    add_member(owner, org_id, staff, "staff")
    other_org = make_organization(owner, admin)
    add_member(owner, other_org, staff, "staff")
    require_mfa(owner, org_id)

    queue_here, queue_there = (
        owner.execute(
            "insert into public.queues (organization_id, name, prefix) values (%s, 'Desk', 'A')"
            " returning id",
            (org,),
        ).fetchone()[0]  # type: ignore[index]
        for org in (org_id, other_org)
    )

    call_here = await client.post(
        f"/v1/queues/{queue_here}/call-next", json={"counter": "1"}, headers=staff.headers
    )
    call_there = await client.post(
        f"/v1/queues/{queue_there}/call-next", json={"counter": "1"}, headers=staff.headers
    )
    me = (await client.get("/v1/me", headers=staff.headers)).json()

    problem = assert_problem(call_here, 403)
    assert problem["type"].endswith("/mfa-enrollment-required")
    assert str(org_id) in problem["detail"]
    assert str(other_org) not in problem["detail"]
    assert call_there.status_code == 204
    # The membership itself stays: turning MFA on is all it takes.
    assert {m["organization_id"] for m in me["memberships"]} == {str(org_id), str(other_org)}
    # An API key of the organization is not a person and is not held to it.
    key = await client.post(
        f"/v1/organizations/{other_org}/api-keys",
        json={"name": "ci", "role": "admin"},
        headers=admin.headers,
    )
    assert key.status_code == 201


async def test_an_organization_without_the_setting_needs_no_mfa(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    owner.execute(
        "update public.organizations set settings = '{\"require_mfa\": false}' where id = %s",
        (org_id,),
    )

    response = await client.patch(
        f"/v1/organizations/{org_id}", json={"name": "Still Mine"}, headers=admin.headers
    )

    assert response.status_code == 200


async def test_codes_of_an_earlier_step_are_refused_after_a_later_one(
    client: httpx.AsyncClient,
) -> None:
    session = await sign_up(client)
    email = session["user"]["email"]
    enrollment = await enable_mfa(client, session)
    totp = pyotp.TOTP(enrollment["secret"])
    later, earlier = totp.at(time.time() + 30), totp.at(time.time())

    assert (await mfa_grant(client, await mfa_step(client, email), later)).status_code == 200
    if earlier != later:
        assert_problem(await mfa_grant(client, await mfa_step(client, email), earlier), 401)


async def test_an_admin_turns_the_requirement_on_only_with_mfa_of_their_own(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    admin = User(id=session["user"]["id"], email=session["user"]["email"], token="")
    org_id = make_organization(owner, admin)
    owner.execute(
        "update public.organizations set settings = '{\"templates\": {}}' where id = %s",
        (org_id,),
    )
    body = {"settings": {"require_mfa": True}}

    refused = await client.patch(f"/v1/organizations/{org_id}", json=body, headers=bearer(session))
    assert_problem(refused, 409)
    await enable_mfa(client, session)
    accepted = await client.patch(f"/v1/organizations/{org_id}", json=body, headers=bearer(session))

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["settings"] == {"require_mfa": True}
    stored = owner.execute("select settings from public.organizations where id = %s", (org_id,))
    assert stored.fetchone() == ({"templates": {}, "require_mfa": True},)
    bad = await client.patch(
        f"/v1/organizations/{org_id}",
        json={"settings": {"require_mfa": "sometimes"}},
        headers=bearer(session),
    )
    assert_problem(bad, 422)
