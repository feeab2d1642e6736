"""Helpers shared by the auth tests: sign-up through the API and API keys issued by it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

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
