"""Enqueueing on the caller's connection: the job commits or rolls back with the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import fetch_row
from slotease.jobs.queues import priority_of


async def enqueue(
    conn: Connection,
    task: str,
    args: dict[str, Any],
    *,
    queue: str = "default",
    scheduled_at: datetime | None = None,
    lock: str | None = None,
    queueing_lock: str | None = None,
    retry: bool = False,
) -> int:
    """`retry` marks the job as the next attempt of work that failed: it runs after fresh work."""
    row = await fetch_row(
        conn,
        "select app.enqueue_job(%(queue)s, %(task)s, %(args)s, %(scheduled_at)s, %(lock)s,"
        " %(queueing_lock)s, %(priority)s) as id",
        {
            "queue": queue,
            "task": task,
            "args": Jsonb(args),
            "scheduled_at": scheduled_at,
            "lock": lock,
            "queueing_lock": queueing_lock,
            "priority": priority_of(queue, retry=retry),
        },
    )
    job_id: int = row["id"]
    return job_id
