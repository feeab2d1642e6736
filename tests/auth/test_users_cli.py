"""`slotease users create`: an operator creates accounts that sign in through the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.auth.support import PASSWORD, RunCli, assert_problem, count_users, new_email
from tests.auth.support import run_cli as run_cli

pytestmark = pytest.mark.anyio

Owner = psycopg.Connection[Any]


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"grant_type": "password", "email": email, "password": password}
    )


async def test_created_user_signs_in(
    client: httpx.AsyncClient, owner: Owner, run_cli: RunCli
) -> None:
    email = new_email()

    result = await run_cli("users", "create", email, "--password", PASSWORD, "--full-name", "Op")

    assert result.exit_code == 0, result.output
    assert email in result.output
    response = await sign_in(client, email, PASSWORD)
    assert response.status_code == 200
    user = response.json()["user"]
    assert (user["email"], user["full_name"]) == (email, "Op")
    assert str(uuid.UUID(user["id"])) in result.output
    admins = owner.execute(
        "select count(*) from app.platform_admins where user_id = %s", (user["id"],)
    ).fetchone()
    assert admins == (0,)
    assert_problem(await sign_in(client, email, "wrong password"), 401)


async def test_super_admin_flag_makes_a_platform_admin(
    client: httpx.AsyncClient, owner: Owner, run_cli: RunCli
) -> None:
    email = new_email()

    result = await run_cli("users", "create", email, "--password", PASSWORD, "--super-admin")

    assert result.exit_code == 0, result.output
    session = (await sign_in(client, email, PASSWORD)).json()
    admins = owner.execute(
        "select count(*) from app.platform_admins where user_id = %s", (session["user"]["id"],)
    ).fetchone()
    assert admins == (1,)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert me.json()["is_super_admin"] is True
    assert me.json()["full_name"] == ""


async def test_password_is_prompted_when_not_given(
    client: httpx.AsyncClient, run_cli: RunCli
) -> None:
    email = new_email()

    result = await run_cli("users", "create", email, stdin=f"{PASSWORD}\n{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert (await sign_in(client, email, PASSWORD)).status_code == 200


async def test_a_taken_email_fails_without_a_second_account(owner: Owner, run_cli: RunCli) -> None:
    email = new_email()
    assert (await run_cli("users", "create", email, "--password", PASSWORD)).exit_code == 0

    result = await run_cli("users", "create", email.upper(), "--password", "another password")

    assert result.exit_code == 1
    assert "already exists" in result.output
    assert count_users(owner, email) == 1


@pytest.mark.parametrize(
    ("email", "password"),
    [("not-an-email", PASSWORD), ("fine@example.com", "short"), ("fine@example.com", "x" * 257)],
)
async def test_bad_input_is_refused_and_creates_nothing(
    owner: Owner, run_cli: RunCli, email: str, password: str
) -> None:
    result = await run_cli("users", "create", email, "--password", password)

    assert result.exit_code == 2
    assert "invalid input" in result.output
    assert count_users(owner, email) == 0
