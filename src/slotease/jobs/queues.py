"""Job queues and their priorities. A worker takes the highest priority first across the
queues it serves (procrastinate orders by priority, then by age): what a person is waiting
for goes before webhooks and maintenance, those before reports and bulk sends, and every
retry after all first attempts, so a provider outage cannot hold up fresh work."""

from __future__ import annotations

from typing import TypedDict

INTERACTIVE = "interactive"
WEBHOOKS = "webhooks"
MAINTENANCE = "maintenance"
# The queue analytics.service enqueues reports on.
REPORTS = "analytics"
BULK = "bulk"

PRIORITIES = {INTERACTIVE: 40, WEBHOOKS: 30, MAINTENANCE: 20, REPORTS: 10, BULK: 0}
# Larger than the spread of PRIORITIES: a retry ranks below every first attempt, and retries
# keep among themselves the order of their queues.
RETRY_PENALTY = 100


def priority_of(queue: str, *, retry: bool = False) -> int:
    """The priority of a job of `queue` (0 for a queue not listed here)."""
    return PRIORITIES.get(queue, 0) - (RETRY_PENALTY if retry else 0)


class TaskOptions(TypedDict):
    name: str
    queueing_lock: str
    queue: str
    priority: int


def maintenance_task(name: str) -> TaskOptions:
    """The options of a periodic task named `name`: procrastinate defers it itself, on the
    maintenance queue, at most one waiting at a time."""
    return TaskOptions(
        name=name, queueing_lock=name, queue=MAINTENANCE, priority=priority_of(MAINTENANCE)
    )
