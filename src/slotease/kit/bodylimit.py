"""Refuse request bodies over the configured size with a 413 problem.

Starlette's own limit answers in plain text and only once the body is read; this one refuses a
declared oversized body before reading any of it, and counts chunked bodies as they stream.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotease.kit.problems import http_problem


class ContentTooLarge(HTTPException):
    # An HTTPException, so that FastAPI's body parsing passes it on as it is instead of
    # turning it into a 400, and the app's handler renders it as a problem.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await http_problem(ContentTooLarge(self.max_bytes))(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ContentTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ContentTooLarge as exc:
            # Raised where no exception handler runs (a middleware reading the body).
            if started:
                raise
            await http_problem(exc)(scope, receive, send)
