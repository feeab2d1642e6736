"""Sign-up, the token exchange (password and refresh grants) and logout."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from argon2 import PasswordHasher

from slotease.auth.passwords import needs_rehash
from slotease.auth.tokens import TokenKeys, verify_access_token
from slotease.config import DEFAULT_ISSUER
from slotease.kit import crypto
from slotease.kit.secrets import hash_secret
from tests.auth.support import PASSWORD, assert_problem, count_users, new_email, sign_up
from tests.conftest import TEST_JWT_SECRET
from tests.factories import unseal

pytestmark = pytest.mark.anyio

Owner = psycopg.Connection[Any]


def family_of(owner: Owner, refresh_token: str) -> list[tuple[Any, ...]]:
    """(used_at, revoked_at) of every token in the family of `refresh_token`, oldest first."""
    return owner.execute(
        "select used_at, revoked_at from app.refresh_tokens where family_id ="
        " (select family_id from app.refresh_tokens where token_hash = %s) order by created_at",
        (hash_secret(refresh_token),),
    ).fetchall()


async def password_grant(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"grant_type": "password", "email": email, "password": password}
    )


async def refresh_grant(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


# ---------------------------------------------------------------------------------------
# Sign-up.
# ---------------------------------------------------------------------------------------
async def test_signup_creates_the_user_and_signs_them_in(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    email = new_email()
    session = await sign_up(client, email=email, full_name="Grace Hopper", phone="+33 1 23 45 67")

    assert session["token_type"] == "bearer"
    assert session["expires_in"] == 3600
    assert session["refresh_token"].startswith("rt_")
    assert session["user"]["email"] == email
    assert session["user"]["full_name"] == "Grace Hopper"
    claims = verify_access_token(
        TokenKeys(TEST_JWT_SECRET), session["access_token"], issuers={DEFAULT_ISSUER}
    )
    assert claims["sub"] == session["user"]["id"]
    assert claims["email"] == email

    row = owner.execute(
        "select u.encrypted_password, u.last_sign_in_at, p.full_name, p.phone"
        " from auth.users u join public.user_profiles p on p.user_id = u.id where u.id = %s",
        (session["user"]["id"],),
    ).fetchone()
    assert row is not None
    password_hash, last_sign_in_at, full_name, phone = row
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash
    assert last_sign_in_at is not None
    # Sealed to the new user: ciphertext in the table, the number only through the key.
    assert b"23 45 67" not in phone
    assert (full_name, unseal(crypto.PHONE, session["user"]["id"], phone)) == (
        "Grace Hopper",
        "+33 1 23 45 67",
    )

    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert me.status_code == 200
    assert me.json()["full_name"] == "Grace Hopper"


async def test_signup_with_a_taken_email_in_any_case_is_a_conflict(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    email = new_email()
    await sign_up(client, email=email)

    response = await client.post(
        "/v1/auth/signup",
        json={"email": email.upper(), "password": PASSWORD, "full_name": "Impostor"},
    )

    assert_problem(response, 409)
    assert count_users(owner, email) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "missing@tld@twice.com"}, "email"),
        ({"password": "short7!"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"full_name": "   "}, "full_name"),
        ({"full_name": "n" * 201}, "full_name"),
        ({"phone": "call me maybe"}, "phone"),
        ({"role": "admin"}, "role"),
    ],
)
async def test_signup_rejects_bad_input_and_creates_nothing(
    client: httpx.AsyncClient, owner: Owner, change: dict[str, str], field: str
) -> None:
    email = new_email()
    body = {"email": email, "password": PASSWORD, "full_name": "Ada", **change}

    response = await client.post("/v1/auth/signup", json=body)

    problem = assert_problem(response, 422)
    assert any(error["loc"][-1] == field for error in problem["errors"])
    assert PASSWORD not in response.text
    assert count_users(owner, email) == 0


async def test_signup_requires_email_password_and_name(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/signup", json={})

    problem = assert_problem(response, 422)
    assert {error["loc"][-1] for error in problem["errors"]} == {"email", "password", "full_name"}


# ---------------------------------------------------------------------------------------
# Password grant.
# ---------------------------------------------------------------------------------------
async def test_password_grant_signs_in_case_insensitively(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    user_id = session["user"]["id"]
    owner.execute("update auth.users set last_sign_in_at = null where id = %s", (user_id,))

    response = await password_grant(client, session["user"]["email"].upper())

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == session["user"]
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] != session["refresh_token"]
    assert (
        verify_access_token(
            TokenKeys(TEST_JWT_SECRET), body["access_token"], issuers={DEFAULT_ISSUER}
        )["sub"]
        == user_id
    )
    row = owner.execute(
        "select last_sign_in_at from auth.users where id = %s", (user_id,)
    ).fetchone()
    assert row is not None
    assert row[0] is not None
    # A new sign-in starts a new family, independent of the sign-up session.
    assert len(family_of(owner, body["refresh_token"])) == 1


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    session = await sign_up(client)

    wrong_password = await password_grant(client, session["user"]["email"], "not the password")
    unknown_email = await password_grant(client, new_email())

    first = assert_problem(wrong_password, 401)
    second = assert_problem(unknown_email, 401)
    assert first == second
    assert wrong_password.headers["www-authenticate"] == "Bearer"


async def test_a_user_without_a_password_cannot_sign_in(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    email = new_email()
    owner.execute("insert into auth.users (email) values (%s)", (email,))

    assert_problem(await password_grant(client, email), 401)


async def test_sign_in_rehashes_a_password_hashed_with_old_parameters(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    weak_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak_hash)
    owner.execute(
        "update auth.users set encrypted_password = %s where id = %s",
        (weak_hash, session["user"]["id"]),
    )

    response = await password_grant(client, session["user"]["email"])

    assert response.status_code == 200
    row = owner.execute(
        "select encrypted_password from auth.users where id = %s", (session["user"]["id"],)
    ).fetchone()
    assert row is not None
    assert row[0] != weak_hash
    assert not needs_rehash(row[0])
    assert (await password_grant(client, session["user"]["email"])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"grant_type": "client_credentials", "client_id": "x"},
        {"email": "a@example.com", "password": PASSWORD},
        {"grant_type": "password", "email": "a@example.com"},
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": ""},
        {"grant_type": "password", "email": "a@example.com", "password": "x" * 257},
    ],
)
async def test_token_rejects_malformed_grants(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    assert_problem(await client.post("/v1/auth/token", json=body), 422)


# ---------------------------------------------------------------------------------------
# Refresh grant.
# ---------------------------------------------------------------------------------------
async def test_refresh_rotates_the_token_within_its_family(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)

    response = await refresh_grant(client, session["refresh_token"])

    assert response.status_code == 200
    rotated = response.json()
    assert rotated["user"] == session["user"]
    assert rotated["refresh_token"] != session["refresh_token"]
    claims = verify_access_token(
        TokenKeys(TEST_JWT_SECRET), rotated["access_token"], issuers={DEFAULT_ISSUER}
    )
    assert claims["sub"] == session["user"]["id"]
    family = family_of(owner, rotated["refresh_token"])
    assert len(family) == 2
    (old_used, old_revoked), (new_used, new_revoked) = family
    assert old_used is not None
    assert old_revoked is None
    assert new_used is None
    assert new_revoked is None
    # The rotated token is itself good for one more refresh.
    assert (await refresh_grant(client, rotated["refresh_token"])).status_code == 200


async def test_replaying_a_spent_refresh_token_revokes_the_family(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)
    rotated = (await refresh_grant(client, session["refresh_token"])).json()

    replay = await refresh_grant(client, session["refresh_token"])

    assert_problem(replay, 401)
    assert all(
        revoked_at is not None for _, revoked_at in family_of(owner, rotated["refresh_token"])
    )
    # The legitimate holder's newer token is revoked with the family.
    assert_problem(await refresh_grant(client, rotated["refresh_token"]), 401)


async def test_unknown_and_expired_refresh_tokens_are_rejected(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    assert_problem(await refresh_grant(client, "rt_does-not-exist"), 401)

    session = await sign_up(client)
    owner.execute(
        "update app.refresh_tokens set expires_at = now() - interval '1 second'"
        " where token_hash = %s",
        (hash_secret(session["refresh_token"]),),
    )
    assert_problem(await refresh_grant(client, session["refresh_token"]), 401)
    assert family_of(owner, session["refresh_token"]) == [(None, None)]


async def test_concurrent_refreshes_with_one_token_succeed_once(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    session = await sign_up(client)

    responses = await asyncio.gather(
        *(refresh_grant(client, session["refresh_token"]) for _ in range(5))
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 401, 401, 401, 401]
    # Exactly one successor was issued: the original and the winner's token.
    assert len(family_of(owner, session["refresh_token"])) == 2


# ---------------------------------------------------------------------------------------
# Logout.
# ---------------------------------------------------------------------------------------
async def test_logout_revokes_the_whole_family(client: httpx.AsyncClient, owner: Owner) -> None:
    session = await sign_up(client)
    rotated = (await refresh_grant(client, session["refresh_token"])).json()

    response = await client.post(
        "/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]}
    )

    assert response.status_code == 204
    assert response.content == b""
    assert all(
        revoked_at is not None for _, revoked_at in family_of(owner, rotated["refresh_token"])
    )
    assert_problem(await refresh_grant(client, rotated["refresh_token"]), 401)


async def test_logout_leaves_other_sessions_alone(client: httpx.AsyncClient) -> None:
    session = await sign_up(client)
    other = (await password_grant(client, session["user"]["email"])).json()

    await client.post("/v1/auth/logout", json={"refresh_token": session["refresh_token"]})

    assert (await refresh_grant(client, other["refresh_token"])).status_code == 200


async def test_logout_with_an_unknown_token_reveals_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/logout", json={"refresh_token": "rt_never-issued"})

    assert response.status_code == 204


async def test_logout_requires_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/auth/logout", json={}), 422)
