"""The current user (`GET`/`PATCH /v1/me`) and how bearer tokens are judged on the way in."""

from __future__ import annotations

import base64
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from slotease.config import DEFAULT_ISSUER, Settings
from slotease.kit import crypto
from tests.auth.support import assert_problem, issue_api_key
from tests.conftest import TEST_JWT_SECRET
from tests.factories import add_member, make_organization, make_user, seal
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

Owner = psycopg.Connection[Any]


def claims_for(user_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "role": "authenticated",
        "aud": "authenticated",
        "email": "someone@example.com",
        "iat": now,
        "exp": now + 600,
        "iss": DEFAULT_ISSUER,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_made_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(claims).encode()),
            b64url(signature),
        ]
    )


def hmac_signed_token(header: dict[str, Any], claims: dict[str, Any], digest: str) -> str:
    """A token whose signature is a valid HMAC with the test secret, whatever `alg` claims."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(TEST_JWT_SECRET.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------------
# GET /v1/me.
# ---------------------------------------------------------------------------------------
async def test_me_shows_profile_and_memberships_from_the_database(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner, name="Dr. Who")
    owner.execute(
        "update public.user_profiles set phone = %s where user_id = %s",
        (seal(crypto.PHONE, user.id, "+44 20 7946 0000"), user.id),
    )
    clinic = make_organization(owner, user)
    bank = make_organization(owner, make_user(owner), name="Bank")
    add_member(owner, bank, user, "staff")
    make_organization(owner, make_user(owner), name="Elsewhere")

    response = await client.get("/v1/me", headers=user.headers)

    assert response.status_code == 200
    assert response.json() == {
        "id": str(user.id),
        "email": user.email,
        "full_name": "Dr. Who",
        "phone": "+44 20 7946 0000",
        "is_super_admin": False,
        "email_verified": True,
        "mfa_enabled": False,
        "memberships": [
            {"organization_id": str(clinic), "role": "admin"},
            {"organization_id": str(bank), "role": "staff"},
        ],
    }


async def test_me_trusts_memberships_from_the_database_not_the_token(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner)
    forged = jwt.encode(
        claims_for(
            user.id,
            is_super_admin=True,
            app_metadata={"memberships": [{"organization_id": str(uuid.uuid4()), "role": "admin"}]},
        ),
        TEST_JWT_SECRET,
        algorithm="HS256",
    )

    body = (await client.get("/v1/me", headers=bearer(forged))).json()

    assert body["is_super_admin"] is False
    assert body["memberships"] == []


async def test_me_reports_a_super_admin(client: httpx.AsyncClient, owner: Owner) -> None:
    operator = make_user(owner, super_admin=True)

    body = (await client.get("/v1/me", headers=operator.headers)).json()

    assert body["is_super_admin"] is True


async def test_me_needs_a_signed_in_user(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    organization = make_organization(owner, admin)
    key = (await issue_api_key(client, organization, admin))["key"]

    assert_problem(await client.get("/v1/me"), 401)
    # An API key acts for an organization; it is not a user.
    assert_problem(await client.get("/v1/me", headers={"apikey": key}), 401)
    assert (
        await client.get(
            "/v1/organizations/" + str(organization) + "/api-keys", headers={"apikey": key}
        )
    ).status_code == 200


async def test_a_supabase_issued_token_is_accepted(settings: Settings, owner: Owner) -> None:
    project = "https://abcdefghijklmnop.supabase.co/auth/v1"
    user = make_user(owner, name="From Supabase")
    token = jwt.encode(
        claims_for(
            user.id,
            email=user.email,
            iss=project,
            session_id=str(uuid.uuid4()),
            app_metadata={"provider": "email", "providers": ["email"]},
            user_metadata={"full_name": "Ignored Name"},
            aal="aal1",
            amr=[{"method": "password", "timestamp": int(time.time())}],
            is_anonymous=False,
            phone="",
        ),
        TEST_JWT_SECRET,
        algorithm="HS256",
        headers={"kid": "supabase-key-id"},
    )

    async with served(build_app(settings, jwt_accepted_issuers=[project])) as client:
        response = await client.get("/v1/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["id"] == str(user.id)
    assert response.json()["email"] == user.email
    assert response.json()["full_name"] == "From Supabase"


async def test_a_user_without_a_profile_sees_empty_fields(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    row = owner.execute(
        "insert into auth.users (email) values ('bare@example.com') returning id"
    ).fetchone()
    assert row is not None
    token = jwt.encode(claims_for(row[0]), TEST_JWT_SECRET, algorithm="HS256")

    body = (await client.get("/v1/me", headers=bearer(token))).json()

    assert (body["full_name"], body["phone"], body["memberships"]) == ("", None, [])


async def test_a_hand_signed_hs256_token_is_accepted(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    """The control for the hand-made tokens below: they fail for their `alg`, not their form."""
    user = make_user(owner)
    token = hmac_signed_token({"alg": "HS256", "typ": "JWT"}, claims_for(user.id), "sha256")

    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200


def _bad_tokens() -> list[tuple[str, str]]:
    user_id = uuid.uuid4()
    good = claims_for(user_id)
    hs256_header = {"alg": "HS256", "typ": "JWT"}
    return [
        ("expired", jwt.encode(claims_for(user_id, exp=int(time.time()) - 60), TEST_JWT_SECRET)),
        ("bad signature", jwt.encode(good, "another-secret-" + "y" * 40)),
        ("alg none", hand_made_token({"alg": "none", "typ": "JWT"}, good, b"")),
        ("alg None", hand_made_token({"alg": "None"}, good, b"")),
        ("HS512", hmac_signed_token({"alg": "HS512", "typ": "JWT"}, good, "sha512")),
        (
            "RS256 header over an HMAC-SHA256 signature",
            hmac_signed_token({"alg": "RS256", "typ": "JWT"}, good, "sha256"),
        ),
        ("RS256 with junk signature", hand_made_token({"alg": "RS256"}, good, b"\x01" * 256)),
        ("wrong audience", jwt.encode(claims_for(user_id, aud="service"), TEST_JWT_SECRET)),
        ("no audience", jwt.encode(claims_for(user_id, aud=None), TEST_JWT_SECRET)),
        ("missing sub", jwt.encode(claims_for(user_id, sub=None), TEST_JWT_SECRET)),
        ("non-uuid sub", jwt.encode(claims_for("admin"), TEST_JWT_SECRET)),
        ("missing exp", jwt.encode(claims_for(user_id, exp=None), TEST_JWT_SECRET)),
        ("anon role", jwt.encode(claims_for(user_id, role="anon"), TEST_JWT_SECRET)),
        ("service role", jwt.encode(claims_for(user_id, role="service_role"), TEST_JWT_SECRET)),
        ("no role", jwt.encode(claims_for(user_id, role=None), TEST_JWT_SECRET)),
        (
            "payload tampered after signing",
            ".".join(
                [
                    b64url(json.dumps(hs256_header).encode()),
                    b64url(json.dumps(claims_for(uuid.uuid4())).encode()),
                    jwt.encode(good, TEST_JWT_SECRET).split(".")[2],
                ]
            ),
        ),
        ("not a jwt", "definitely-not-a-token"),
        ("two segments", "abc.def"),
    ]


@pytest.mark.parametrize(("case", "token"), _bad_tokens(), ids=[case for case, _ in _bad_tokens()])
async def test_bad_bearer_tokens_are_unauthorized(
    client: httpx.AsyncClient, case: str, token: str
) -> None:
    response = await client.get("/v1/me", headers=bearer(token))

    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Traceback" not in body["detail"]


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc.def.ghi"]
)
async def test_malformed_authorization_headers_are_unauthorized(
    client: httpx.AsyncClient, authorization: str
) -> None:
    assert_problem(await client.get("/v1/me", headers={"Authorization": authorization}), 401)


# ---------------------------------------------------------------------------------------
# PATCH /v1/me.
# ---------------------------------------------------------------------------------------
async def test_patch_me_updates_only_the_given_fields(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner, name="Before")
    bystander = make_user(owner, name="Bystander")

    renamed = await client.patch("/v1/me", json={"full_name": "  After  "}, headers=user.headers)
    assert renamed.status_code == 200
    assert (renamed.json()["full_name"], renamed.json()["phone"]) == ("After", None)

    phoned = await client.patch("/v1/me", json={"phone": "+1 555 0100"}, headers=user.headers)
    assert (phoned.json()["full_name"], phoned.json()["phone"]) == ("After", "+1 555 0100")

    cleared = await client.patch("/v1/me", json={"phone": None}, headers=user.headers)
    assert (cleared.json()["full_name"], cleared.json()["phone"]) == ("After", None)

    rows = owner.execute(
        "select user_id, full_name from public.user_profiles where user_id in (%s, %s)",
        (user.id, bystander.id),
    ).fetchall()
    assert dict(rows) == {user.id: "After", bystander.id: "Bystander"}


async def test_patch_me_creates_a_missing_profile(client: httpx.AsyncClient, owner: Owner) -> None:
    row = owner.execute(
        "insert into auth.users (email) values ('noprofile@example.com') returning id"
    ).fetchone()
    assert row is not None
    token = jwt.encode(claims_for(row[0]), TEST_JWT_SECRET, algorithm="HS256")

    response = await client.patch("/v1/me", json={"full_name": "New Here"}, headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["full_name"] == "New Here"
    profile = owner.execute(
        "select full_name from public.user_profiles where user_id = %s", (row[0],)
    ).fetchone()
    assert profile == ("New Here",)


async def test_patch_me_for_a_deleted_user_is_unauthorized(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims_for(uuid.uuid4()), TEST_JWT_SECRET, algorithm="HS256")

    assert_problem(
        await client.patch("/v1/me", json={"full_name": "Ghost"}, headers=bearer(token)), 401
    )


@pytest.mark.parametrize(
    "body",
    [{"full_name": ""}, {"full_name": "x" * 201}, {"phone": "12"}, {"email": "new@example.com"}],
)
async def test_patch_me_rejects_bad_input_and_changes_nothing(
    client: httpx.AsyncClient, owner: Owner, body: dict[str, str]
) -> None:
    user = make_user(owner, name="Unchanged")

    assert_problem(await client.patch("/v1/me", json=body, headers=user.headers), 422)

    profile = owner.execute(
        "select full_name, phone from public.user_profiles where user_id = %s", (user.id,)
    ).fetchone()
    assert profile == ("Unchanged", None)


async def test_patch_me_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/v1/me", json={"full_name": "Anon"}), 401)
