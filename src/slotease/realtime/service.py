"""Who may follow which topic: the same rules as the tables' policies, asked of the database."""

from __future__ import annotations

from typing import Literal

from psycopg.errors import InsufficientPrivilege

from slotease.db.database import Database, DbIdentity
from slotease.realtime import repository
from slotease.realtime.topics import Topic

Refusal = Literal["forbidden", "not_found"]


async def refusal_for(db: Database, identity: DbIdentity, topic: Topic) -> Refusal | None:
    """None when `identity` may subscribe to `topic`, else why not."""
    try:
        async with db.transaction(identity) as conn:
            allowed = await repository.topic_access(conn, topic.kind, topic.resource_id)
    except InsufficientPrivilege:
        # Anonymous callers have no privilege on personal tables at all.
        return "forbidden"
    if allowed is None:
        return "not_found"
    return None if allowed else "forbidden"
