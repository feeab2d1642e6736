"""Enqueueing on the caller's connection: the job commits or rolls back with the change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import fetch_row
from slotease.jobs.queues import priority_of

# Named so that bench/booking.py runs the very statement the booking path sends.
ENQUEUE_JOBS_SQL = "select count(*) from app.enqueue_jobs(%(jobs)s)"


@dataclass(frozen=True)
class Job:
    """One job to enqueue. `retry` marks the next attempt of work that failed: it runs after
    fresh work."""

    task: str
    args: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    scheduled_at: datetime | None = None
    lock: str | None = None
    queueing_lock: str | None = None
    retry: bool = False

    def spec(self) -> dict[str, Any]:
        """The job as `app.enqueue_jobs` reads it."""
        return {
            "queue": self.queue,
            "task": self.task,
            "args": self.args,
            "scheduled_at": None if self.scheduled_at is None else self.scheduled_at.isoformat(),
            "lock": self.lock,
            "queueing_lock": self.queueing_lock,
            "priority": priority_of(self.queue, retry=self.retry),
        }


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


async def enqueue_all(conn: Connection, jobs: Sequence[Job]) -> None:
    """All of `jobs` in one statement, in order, each checked as `enqueue` checks one. Nothing
    is read back, so on a pipelined connection the statement travels with the write that
    owes the jobs (see appointments.service.book) and any refusal surfaces at its sync."""
    if jobs:
        await conn.execute(ENQUEUE_JOBS_SQL, {"jobs": Jsonb([job.spec() for job in jobs])})
