"""The app as a real server process for the WebSocket tests, with one route more: it emits a
domain event inside a request's transaction, and can roll that transaction back."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from slotease.app import create_app
from slotease.auth.deps import DbDep
from slotease.kit.events import DomainEvent, emit
from slotease.kit.problems import Conflict


def build() -> FastAPI:
    app = create_app()

    @app.post("/test/emit", status_code=204)
    async def emit_event(body: dict[str, Any], conn: DbDep) -> None:
        await conn.execute("select 1")
        emit(DomainEvent(body["name"], body["payload"]))
        if body.get("rollback"):
            raise Conflict("rolled back on purpose")

    return app
