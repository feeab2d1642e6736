"""The read that decides whether the connecting caller may follow topics, run as that caller so
that the row-level security policies give the answer."""

from __future__ import annotations

from collections.abc import Collection

from slotease.db.database import Connection
from slotease.db.queries import fetch_all
from slotease.realtime.topics import Topic

# One row per topic: `allowed` tells whether the caller may follow it, null when the resource
# does not exist for them (see migration 0012, "Realtime").
_ACCESS_SQL = (
    "select topic_kind, topic_id, allowed"
    " from app.realtime_topic_access(%(kinds)s::text[], %(ids)s::uuid[])"
)


async def topic_access(conn: Connection, topics: Collection[Topic]) -> dict[Topic, bool | None]:
    """Every topic of `topics` checked in one statement."""
    rows = await fetch_all(
        conn,
        _ACCESS_SQL,
        {
            "kinds": [topic.kind for topic in topics],
            "ids": [topic.resource_id for topic in topics],
        },
    )
    return {Topic(row["topic_kind"], row["topic_id"]): row["allowed"] for row in rows}
