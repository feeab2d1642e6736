"""The outermost layer of every HTTP request: its id, its metrics and its access-log line.

It sits outside the rate and body limits so that their refusals are counted, logged and carry
an X-Request-ID too. It also answers unexpected errors itself: Starlette's error middleware
runs outside every user middleware, so its 500 would leave without the request id.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotease.config import Settings
from slotease.kit.clientaddress import client_address
from slotease.kit.logs import request_id_from, request_id_var
from slotease.kit.metrics import Metrics, route_template
from slotease.kit.problems import unexpected_problem

log = logging.getLogger(__name__)
access_log = logging.getLogger("slotease.access")

REQUEST_ID_HEADER = "X-Request-ID"


class AccessMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, settings: Settings) -> None:
        self.app = app
        self.metrics = metrics
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                headers[REQUEST_ID_HEADER] = request_id
                message["headers"] = headers.raw
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status is not None:
                # Part of an answer has left; the server can only drop the connection.
                raise
            await unexpected_problem()(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            status = status or 500
            self.metrics.observe(scope["method"], route, status, elapsed)
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "client": client_address(HTTPConnection(scope), self.settings),
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)
