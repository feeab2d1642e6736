"""Supabase mode with the project's URL and keys: the account routes forwarded to Supabase
Auth's API, its ES256 tokens verified through its JWKS, erasure through its admin API. The
API is a stand-in (tests.supabase.gotrue) that checks requests as GoTrue does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from slotease.app import create_app
from slotease.config import Settings
from slotease.kit.problems import PROBLEM_BASE
from tests.conftest import TEST_JWT_SECRET, app_client
from tests.notifications.support import run_jobs, worker_app
from tests.supabase import gotrue, project
from tests.web.test_session import csrf_of

pytestmark = pytest.mark.anyio

Conn = psycopg.Connection[Any]
PASSWORD = "a long enough password"


@pytest.fixture
def supabase(
    project_name: str, server_conninfo: str, supabase_owner: str
) -> Iterator[gotrue.GoTrue]:
    with gotrue.serve(project.with_user(server_conninfo, project.AUTH_ADMIN, project_name)) as api:
        yield api


@pytest.fixture
def forwarding(supabase_settings: Settings, supabase: gotrue.GoTrue) -> Settings:
    return supabase_settings.model_copy(
        update={
            "supabase_url": supabase.url,
            "supabase_anon_key": gotrue.ANON_KEY,
            "supabase_service_role_key": gotrue.SERVICE_ROLE_KEY,
        }
    )


@pytest.fixture
async def api(forwarding: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(forwarding)) as http:
        yield http


def asked(supabase: gotrue.GoTrue, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in supabase.requests if (r["method"], r["path"]) == (method, path)]


async def sign_up(api: httpx.AsyncClient, **extra: str) -> dict[str, Any]:
    body = {"email": f"p-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, **extra}
    response = await api.post("/v1/auth/signup", json={"full_name": "Mary Somerville", **body})
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


async def test_sign_up_and_sign_in_go_to_supabase_auth(
    api: httpx.AsyncClient, supabase: gotrue.GoTrue
) -> None:
    session = await sign_up(api, phone="+33 6 12 34 56 78")
    assert session["user"]["full_name"] == "Mary Somerville"
    assert jwt.get_unverified_header(session["access_token"])["alg"] == "ES256"
    (request,) = asked(supabase, "POST", "/auth/v1/signup")
    assert request["headers"]["apikey"] == gotrue.ANON_KEY
    assert request["body"]["data"] == {"full_name": "Mary Somerville", "phone": "+33 6 12 34 56 78"}

    # Supabase Auth's own token, checked with its JWKS; the profile came from the trigger.
    me = await api.get("/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert me.status_code == 200, me.text
    assert (me.json()["full_name"], me.json()["phone"]) == ("Mary Somerville", "+33 6 12 34 56 78")

    email = session["user"]["email"]
    wrong = await api.post(
        "/v1/auth/token", json={"grant_type": "password", "email": email, "password": "nope"}
    )
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["detail"] == "Invalid login credentials"
    signed_in = await api.post(
        "/v1/auth/token", json={"grant_type": "password", "email": email, "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert asked(supabase, "POST", "/auth/v1/token")[-1]["query"] == {"grant_type": ["password"]}

    old = signed_in.json()["refresh_token"]
    refreshed = await api.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": old}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != old
    again = await api.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": old}
    )
    assert again.status_code == 401, again.text

    recovered = await api.post("/v1/auth/recover", json={"email": email})
    assert recovered.status_code == 202, recovered.text
    assert asked(supabase, "POST", "/auth/v1/recover")[0]["body"] == {"email": email}
    # What SlotEase never forwards still names Supabase Auth.
    reset = await api.post("/v1/auth/reset", json={"token": "x", "new_password": PASSWORD})
    assert reset.json()["type"] == PROBLEM_BASE + "accounts-in-supabase-auth"
    # One fetch of the JWKS, at start.
    assert len(asked(supabase, "GET", "/auth/v1/.well-known/jwks.json")) == 1


async def test_supabase_auth_refusing_a_sign_up_is_a_problem_of_its_own(
    api: httpx.AsyncClient,
) -> None:
    session = await sign_up(api)
    taken = await api.post(
        "/v1/auth/signup",
        json={"email": session["user"]["email"], "password": PASSWORD, "full_name": "Again"},
    )
    assert taken.status_code == 422, taken.text
    assert taken.json()["type"] == PROBLEM_BASE + "supabase-auth-refused"
    assert taken.json()["detail"] == "User already registered"


async def test_a_project_confirming_addresses_first_answers_the_user_alone(
    api: httpx.AsyncClient, supabase: gotrue.GoTrue
) -> None:
    supabase.confirm_first = True
    email = f"c-{uuid.uuid4().hex[:8]}@example.com"
    response = await api.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD, "full_name": "Emmy Noether"}
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["confirmation_sent"] is True
    assert (answer["user"]["email"], answer["user"]["full_name"]) == (email, "Emmy Noether")


async def test_supabase_auth_down_is_a_502_not_a_500(supabase_settings: Settings) -> None:
    unreachable = supabase_settings.model_copy(
        update={"supabase_url": "http://127.0.0.1:9", "supabase_anon_key": gotrue.ANON_KEY}
    )
    async with app_client(create_app(unreachable)) as http:
        response = await http.post(
            "/v1/auth/token",
            json={"grant_type": "password", "email": "a@example.com", "password": PASSWORD},
        )
    assert response.status_code == 502, response.text
    assert response.json()["type"] == PROBLEM_BASE + "supabase-auth-unavailable"


async def test_tokens_the_jwks_does_not_vouch_for_are_refused(
    api: httpx.AsyncClient, supabase: gotrue.GoTrue, auth_admin: Conn
) -> None:
    user_id, email = project.insert_user(auth_admin, metadata={"full_name": "Key Holder"})
    issuer = f"{supabase.url}/auth/v1"

    def me(token: str) -> Any:
        return api.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

    assert (await me(supabase.token_for(user_id, email, {}))).status_code == 200
    # The legacy JWT secret keeps working beside the JWKS.
    legacy = project.access_token(user_id, email, TEST_JWT_SECRET, issuer=issuer)
    assert (await me(legacy)).status_code == 200

    impostor = ec.generate_private_key(ec.SECP256R1())
    forged = project.access_token(
        user_id, email, impostor, algorithm="ES256", kid=gotrue.KID, issuer=issuer
    )
    assert (await me(forged)).status_code == 401
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_alg = project.access_token(
        user_id, email, rsa_key, algorithm="RS256", kid=gotrue.KID, issuer=issuer
    )
    assert (await me(other_alg)).status_code == 401

    fetches = len(asked(supabase, "GET", "/auth/v1/.well-known/jwks.json"))
    for _ in range(3):
        unknown = project.access_token(
            user_id, email, impostor, algorithm="ES256", kid="rotated-away", issuer=issuer
        )
        assert (await me(unknown)).status_code == 401
    # Fetched at start moments ago: key ids it does not hold wait for the next look
    # (tests/auth/test_jwks.py), so forged ids cannot flood Supabase with fetches.
    assert len(asked(supabase, "GET", "/auth/v1/.well-known/jwks.json")) == fetches


async def test_erasure_deletes_the_account_through_the_admin_api(
    api: httpx.AsyncClient, supabase: gotrue.GoTrue, forwarding: Settings, superuser: Conn
) -> None:
    session = await sign_up(api, phone="+33 6 00 00 00 01")
    user_id = session["user"]["id"]
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    wrong = await api.request("DELETE", "/v1/me", json={"password": "not it"}, headers=headers)
    assert wrong.status_code == 403, wrong.text
    accepted = await api.request("DELETE", "/v1/me", json={"password": PASSWORD}, headers=headers)
    assert accepted.status_code == 202, accepted.text

    async with worker_app(forwarding) as (app, _):
        await run_jobs(app)
    jobs = superuser.execute(
        "select status::text from public.procrastinate_jobs where task_name = 'gdpr.erase'"
    ).fetchall()
    assert jobs == [("succeeded",)]
    (deleted,) = asked(supabase, "DELETE", f"/auth/v1/admin/users/{user_id}")
    assert deleted["body"] == {"should_soft_delete": True}
    assert deleted["headers"]["Authorization"] == f"Bearer {gotrue.SERVICE_ROLE_KEY}"
    account = superuser.execute(
        "select u.email, u.deleted_at is not null, u.raw_user_meta_data, p.full_name, p.phone"
        " from auth.users u join public.user_profiles p on p.user_id = u.id where u.id = %s",
        (user_id,),
    ).fetchone()
    assert account is not None
    assert account[0].endswith("@deleted.invalid")
    assert account[1:] == (True, {}, "", None)


async def test_the_web_sign_in_goes_through_supabase_auth(
    api: httpx.AsyncClient, supabase: gotrue.GoTrue
) -> None:
    session = await sign_up(api)
    csrf = await csrf_of(api, "/login")
    form = {"csrf": csrf, "email": session["user"]["email"], "next": "/me/appointments"}
    refused = await api.post("/login", data={**form, "password": "not it"})
    assert refused.status_code == 401
    assert "The email or password is incorrect." in refused.text
    signed_in = await api.post("/login", data={**form, "password": PASSWORD})
    assert signed_in.status_code == 303, signed_in.text
    cookie = api.cookies["slotease_session"]
    assert cookie in supabase.refresh_tokens

    # The page's token is Supabase Auth's, and the cookie follows its refresh token.
    page_token = await api.post("/session/token", headers={"X-CSRF-Token": csrf})
    assert page_token.status_code == 200, page_token.text
    access = page_token.json()["access_token"]
    assert jwt.get_unverified_header(access)["alg"] == "ES256"
    assert api.cookies["slotease_session"] != cookie
    me = await api.get("/v1/me", headers={"Authorization": f"Bearer {access}"})
    assert me.json()["full_name"] == "Mary Somerville"

    # The account page names Supabase Auth, and its forms change nothing.
    account = await api.get("/account")
    assert account.status_code == 200
    assert "Accounts are managed by Supabase Auth" in account.text
    assert "current_password" not in account.text
    changed = await api.post(
        "/account/password",
        data={"csrf": csrf, "current_password": PASSWORD, "new_password": "another password"},
    )
    assert changed.status_code == 403
    assert supabase.passwords[session["user"]["email"]] == PASSWORD

    logged_out = await api.post("/logout", data={"csrf": csrf})
    assert logged_out.status_code == 303
    assert "slotease_session" not in api.cookies
