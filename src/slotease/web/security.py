"""Transport security headers on every response, API and pages alike."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Two years, subdomains included: the preload list's minimum, and what a site served only
# over TLS can promise.
STRICT_TRANSPORT_SECURITY = "max-age=63072000; includeSubDomains"


class StrictTransportSecurityMiddleware:
    """HSTS on responses that travelled over TLS. The scheme is the one the ASGI server saw,
    or the TLS-terminating proxy's `X-Forwarded-Proto` when the server trusts it (uvicorn's
    `--forwarded-allow-ips`); over plain http browsers ignore the header, so it is not sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
            await send(message)

        await self.app(scope, receive, send_with_hsts)
