from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_health_answers_without_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert set(body) >= {"type", "title", "status", "detail"}


async def test_ready_lists_no_replicas_when_none_is_configured(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.json() == {"status": "ok", "database": "ok", "replicas": []}
