"""The reads that decide whether the connecting user may follow a topic, run as that user so
that the row-level security policies give the answer."""

from __future__ import annotations

from uuid import UUID

from slotease.db.database import Connection
from slotease.realtime.topics import TopicKind

# One row when the resource is visible to the caller, with `allowed` telling whether they may
# follow it; no row when it does not exist for them.
_ACCESS_SQL: dict[TopicKind, str] = {
    "queue": "select true as allowed from public.queues where id = %s",
    "ticket": "select true as allowed from public.tickets where id = %s limit 1",
    "appointment": "select true as allowed from public.appointments where id = %s limit 1",
    "organization": (
        "select app.is_org_member(id) as allowed from public.organizations where id = %s"
    ),
    # Nobody learns whether another user exists: the answer is always a row.
    "user": "select coalesce((select auth.uid()) = %s, false) as allowed",
}


async def topic_access(conn: Connection, kind: TopicKind, resource_id: UUID) -> bool | None:
    cursor = await conn.execute(_ACCESS_SQL[kind], (resource_id,))
    row = await cursor.fetchone()
    return None if row is None else bool(row["allowed"])
