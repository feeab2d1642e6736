"""`slotease users create`: an operator creates accounts that sign in through the API."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from anyio import to_thread
from typer.testing import CliRunner, Result

from slotease.cli import cli
from slotease.config import get_settings
from tests.auth.support import PASSWORD, assert_problem, count_users, new_email
from tests.conftest import TEST_JWT_SECRET

pytestmark = pytest.mark.anyio

Owner = psycopg.Connection[Any]
RunCli = Callable[..., Awaitable[Result]]


@pytest.fixture
def run_cli(owner_conninfo: str, tmp_path: Path) -> Iterator[RunCli]:
    env = {
        "DATABASE_URL": owner_conninfo,
        "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET,
        "SLOTEASE_DATA_DIR": str(tmp_path),
        "SLOTEASE_LOG_LEVEL": "WARNING",
    }

    async def run(*args: str, stdin: str | None = None) -> Result:
        get_settings.cache_clear()
        # The command runs its own event loop, so it gets a thread of its own.
        return await to_thread.run_sync(
            lambda: CliRunner().invoke(cli, list(args), input=stdin, env=env)
        )

    yield run
    get_settings.cache_clear()


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
