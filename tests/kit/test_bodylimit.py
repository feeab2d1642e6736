from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message, Receive, Scope, Send

from slotease.config import Settings
from slotease.kit.bodylimit import BodyLimitMiddleware
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

LIMIT = 2048


async def chunks(body: bytes, size: int = 512) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_declared_oversized_body_is_refused_before_reading(settings: Settings) -> None:
    app = build_app(settings, max_body_bytes=LIMIT)
    async with served(app) as http:
        response = await http.post(
            "/v1/auth/signup",
            content=json.dumps({"email": "a@example.com", "password": "x" * LIMIT}),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 413
        assert str(LIMIT) in response.json()["detail"]
        assert "X-Request-ID" in response.headers
        assert "RateLimit-Remaining" in response.headers


async def test_streamed_oversized_body_is_refused_while_reading(settings: Settings) -> None:
    app = build_app(settings, max_body_bytes=LIMIT)
    big = json.dumps({"padding": "x" * (LIMIT * 2)}).encode()
    async with served(app) as http:
        response = await http.post(
            "/v1/test/echo", content=chunks(big), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 413


async def test_bodies_within_the_limit_pass(settings: Settings) -> None:
    app = build_app(settings, max_body_bytes=LIMIT)
    small = json.dumps({"a": 1, "padding": "x" * (LIMIT - 100)}).encode()
    async with served(app) as http:
        streamed = await http.post(
            "/v1/test/echo", content=chunks(small), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 200
        assert streamed.json() == {"keys": 2}
        declared = await http.post(
            "/v1/test/echo", content=small, headers={"Content-Type": "application/json"}
        )
        assert declared.status_code == 200


async def test_declared_size_is_checked_without_calling_the_app_or_reading() -> None:
    calls: list[str] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append("app")

    async def receive() -> Message:
        calls.append("receive")
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", str(LIMIT + 1).encode())],
    }
    await BodyLimitMiddleware(app, max_bytes=LIMIT)(scope, receive, send)
    assert calls == []
    assert sent[0]["status"] == 413
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
