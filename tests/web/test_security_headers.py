"""What every response tells the browser about transport and origins: HSTS over TLS, and a
page's scripts connect to their own origin only (its API and realtime socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from slotease.app import create_app
from slotease.config import Settings

pytestmark = pytest.mark.anyio

HSTS = "max-age=63072000; includeSubDomains"


@pytest.fixture
async def tls_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app as reached over https (directly, or through a proxy the server trusts)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="https://slotease.example") as http,
    ):
        yield http


def connect_src(response: httpx.Response) -> str:
    policy = response.headers["content-security-policy"]
    (directive,) = [d.strip() for d in policy.split(";") if d.strip().startswith("connect-src")]
    return directive


async def test_pages_connect_only_to_their_own_origin(
    client: httpx.AsyncClient, tls_client: httpx.AsyncClient
) -> None:
    assert connect_src(await client.get("/login")) == "connect-src 'self' ws://test"
    page = await tls_client.get("/login")
    assert connect_src(page) == "connect-src 'self' wss://slotease.example"
    assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(
    "host", ["evil.example; script-src *", "a b", "host:99999999", "[::1]/x", ""]
)
async def test_a_strange_host_header_adds_no_source(client: httpx.AsyncClient, host: str) -> None:
    page = await client.get("/login", headers={"host": host})
    assert connect_src(page) == "connect-src 'self'"


async def test_responses_over_tls_carry_hsts(
    client: httpx.AsyncClient, tls_client: httpx.AsyncClient
) -> None:
    for path in ("/login", "/health", "/v1/organizations", "/v1/no-such-route"):
        response = await tls_client.get(path)
        assert response.headers.get("strict-transport-security") == HSTS, path
        # Browsers ignore the header over plain http, so it is not sent there.
        assert "strict-transport-security" not in (await client.get(path)).headers, path
