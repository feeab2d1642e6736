"""Helpers shared by the auth tests: sign-up through the API, API keys issued by it, and the
`slotease` command run against the test database."""

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
from tests.conftest import TEST_JWT_SECRET
from tests.factories import User

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


async def sign_up(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {"email": new_email(), "password": PASSWORD, "full_name": "Ada Lovelace", **overrides}
    response = await client.post("/v1/auth/signup", json=body)
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


async def issue_api_key(
    client: httpx.AsyncClient, organization_id: uuid.UUID, admin: User, role: str = "admin"
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/organizations/{organization_id}/api-keys",
        json={"name": f"{role} integration", "role": role},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    return body


def count_users(owner: psycopg.Connection[Any], email: str) -> int:
    row = owner.execute(
        "select count(*) from auth.users where lower(email) = lower(%s)", (email,)
    ).fetchone()
    assert row is not None
    return int(row[0])


RunCli = Callable[..., Awaitable[Result]]


@pytest.fixture
def run_cli(owner_conninfo: str, tmp_path: Path) -> Iterator[RunCli]:
    """`await run_cli("users", "create", ...)`: the command against this module's database."""
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
