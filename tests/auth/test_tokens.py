"""Access tokens: a bounded lifetime and a known issuer, ours or a configured Supabase project's."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from slotease.config import DEFAULT_ISSUER, MAX_ACCESS_TOKEN_TTL_SECONDS, Settings
from tests.auth.support import assert_problem, sign_up
from tests.conftest import TEST_JWT_SECRET
from tests.factories import Owner, make_user
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

SUPABASE_ISSUER = "https://abcdefghijklmnop.supabase.co/auth/v1"


def signed(user_id: uuid.UUID, **claims: Any) -> dict[str, str]:
    now = int(time.time())
    payload = {
        "sub": str(user_id),
        "role": "authenticated",
        "aud": "authenticated",
        "email": "someone@example.com",
        "iat": now,
        "exp": now + 3600,
        "iss": DEFAULT_ISSUER,
        **claims,
    }
    payload = {key: value for key, value in payload.items() if value is not None}
    token = jwt.encode(payload, TEST_JWT_SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


async def test_issued_tokens_carry_the_configured_issuer(settings: Settings) -> None:
    app = build_app(settings, jwt_issuer="https://api.slotease.example")
    async with served(app) as http:
        session = await sign_up(http)
        claims = jwt.decode(session["access_token"], options={"verify_signature": False})
        assert claims["iss"] == "https://api.slotease.example"
        me = await http.get(
            "/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"}
        )
        assert me.status_code == 200


async def test_tokens_of_other_or_no_issuer_are_refused(settings: Settings, owner: Owner) -> None:
    user = make_user(owner)
    app = build_app(settings)
    async with served(app) as http:
        assert (await http.get("/v1/me", headers=signed(user.id))).status_code == 200
        for issuer in ("https://evil.example/auth/v1", SUPABASE_ISSUER, None):
            refused = await http.get("/v1/me", headers=signed(user.id, iss=issuer))
            assert_problem(refused, 401)


async def test_a_configured_supabase_project_is_accepted(settings: Settings, owner: Owner) -> None:
    user = make_user(owner)
    app = build_app(settings, jwt_accepted_issuers=[SUPABASE_ISSUER])
    async with served(app) as http:
        # The claims a Supabase project puts in its users' tokens, signed with the shared secret.
        supabase = signed(user.id, iss=SUPABASE_ISSUER, aal="aal1", session_id=str(uuid.uuid4()))
        me = await http.get("/v1/me", headers=supabase)
        assert me.status_code == 200
        assert me.json()["id"] == str(user.id)
        # Our own issuer stays accepted; a Supabase token without `iss` does not exist.
        assert (await http.get("/v1/me", headers=signed(user.id))).status_code == 200
        assert_problem(await http.get("/v1/me", headers=signed(user.id, iss=None)), 401)


async def test_a_signed_token_that_lives_too_long_is_refused(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner)
    now = int(time.time())
    longest = signed(user.id, iat=now, exp=now + MAX_ACCESS_TOKEN_TTL_SECONDS)
    assert (await client.get("/v1/me", headers=longest)).status_code == 200
    too_long = signed(user.id, iat=now, exp=now + MAX_ACCESS_TOKEN_TTL_SECONDS + 1)
    assert_problem(await client.get("/v1/me", headers=too_long), 401)
    # Without `iat` its lifetime is unknown.
    assert_problem(await client.get("/v1/me", headers=signed(user.id, iat=None)), 401)


def test_the_configured_lifetime_is_bounded() -> None:
    assert Settings(access_token_ttl_seconds=MAX_ACCESS_TOKEN_TTL_SECONDS)
    with pytest.raises(ValidationError, match="less than or equal"):
        Settings(access_token_ttl_seconds=MAX_ACCESS_TOKEN_TTL_SECONDS + 1)


def test_accepted_issuers_read_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTEASE_JWT_ACCEPTED_ISSUERS", f" {SUPABASE_ISSUER} ,https://b.example,")
    monkeypatch.setenv("SLOTEASE_JWT_ISSUER", "https://api.slotease.example")
    assert Settings().accepted_jwt_issuers == {
        "https://api.slotease.example",
        SUPABASE_ISSUER,
        "https://b.example",
    }
