"""The webhooks' job: one delivery attempt."""

from __future__ import annotations

from uuid import UUID

from procrastinate import Blueprint

from slotease.jobs import runtime
from slotease.jobs.retry import RETRY
from slotease.webhooks import delivery

blueprint = Blueprint()


@blueprint.task(name=delivery.DELIVER_TASK, retry=RETRY)
async def deliver_webhook(delivery_id: str) -> None:
    """One attempt; a failed one schedules the next itself (see webhooks.delivery)."""
    rt = runtime.current()
    await delivery.attempt(rt.db, rt.settings, UUID(delivery_id))
