"""Act inside the database as the API does: the NOINHERIT login role, one transaction, and the
caller's identity published by the same statement as `Database.transaction`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import psycopg

from slotease.db.database import ANONYMOUS, IDENTITY_SQL, SERVICE, DbIdentity, identity_params
from slotease.kit.secrets import hash_secret

AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]

__all__ = ["ANONYMOUS", "SERVICE", "AsyncConn", "acting_as", "as_api_key", "as_user"]


def as_user(user_id: UUID) -> DbIdentity:
    return DbIdentity(role="authenticated", claims={"sub": str(user_id), "role": "authenticated"})


def as_api_key(secret: str) -> DbIdentity:
    return DbIdentity(
        role="authenticated", claims={"role": "authenticated"}, api_key_hash=hash_secret(secret)
    )


@asynccontextmanager
async def acting_as(app_conninfo: str, identity: DbIdentity) -> AsyncIterator[AsyncConn]:
    """A transaction of the login role of `conninfo` (`slotease_app`, or `slotease_worker` for
    service_role) acting as `identity`; always rolled back, so a test can try any write without
    changing the data other tests see."""
    async with (
        await psycopg.AsyncConnection.connect(app_conninfo, autocommit=True) as conn,
        conn.transaction(force_rollback=True),
    ):
        await conn.execute(IDENTITY_SQL, identity_params(identity))
        yield conn
