"""Who may follow which topic: the same rules as the tables' policies, asked of the database."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from slotease.db.database import Database, DbIdentity
from slotease.realtime import repository
from slotease.realtime.topics import Topic

Refusal = Literal["forbidden", "not_found"]


async def refusals_for(
    db: Database, identity: DbIdentity, topics: Collection[Topic]
) -> dict[Topic, Refusal | None]:
    """For each of `topics`: None when `identity` may follow it, else why not. One transaction
    and one statement however many topics there are."""
    if not topics:
        return {}
    async with db.transaction(identity) as conn:
        access = await repository.topic_access(conn, topics)
    return {topic: _refusal(access.get(topic)) for topic in topics}


def _refusal(allowed: bool | None) -> Refusal | None:
    if allowed is None:
        return "not_found"
    return None if allowed else "forbidden"
