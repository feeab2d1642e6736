"""What the running app holds for the lifetime of the process."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from slotease.config import Settings
from slotease.db.database import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    jwt_secret: str


def app_context(connection: HTTPConnection) -> AppContext:
    context: AppContext = connection.app.state.context
    return context
