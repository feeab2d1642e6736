"""Apps built from the real create_app, with a few routes that exist only in these tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request

from slotease.app import create_app
from slotease.auth.principal import Principal
from slotease.config import Settings


class Boom(RuntimeError):
    pass


async def _whoami(request: Request) -> dict[str, str | None]:
    """What the rate limiter resolved; this route does not read the credentials itself."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        return {"kind": None}
    return {"kind": "anon" if principal.is_anonymous else "key" if principal.is_api_key else "user"}


async def _echo(payload: dict[str, Any]) -> dict[str, int]:
    return {"keys": len(payload)}


async def _boom() -> None:
    raise Boom("password=hunter2 in select * from secrets")


def build_app(settings: Settings, **overrides: Any) -> FastAPI:
    app = create_app(settings.model_copy(update=overrides))
    app.add_api_route("/v1/test/whoami", _whoami, methods=["GET"])
    app.add_api_route("/v1/test/echo", _echo, methods=["POST"])
    app.add_api_route("/v1/test/boom", _boom, methods=["GET"])
    return app


def client(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client calling `app` from `address`; the app's lifespan must be running."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@asynccontextmanager
async def served(app: FastAPI, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (pool, Redis client) running, and a client for it."""
    async with app.router.lifespan_context(app), client(app, address) as http:
        yield http
