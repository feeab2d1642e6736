"""Erasure's job: what the person's own role cannot reach is erased by the worker."""

from __future__ import annotations

from uuid import UUID

from procrastinate import Blueprint

from slotease.jobs import runtime
from slotease.jobs.retry import RETRY
from slotease.privacy import service

blueprint = Blueprint()


@blueprint.task(name=service.ERASE_TASK, retry=RETRY)
async def erase_account(user_id: str) -> None:
    """Enqueued by `DELETE /v1/me`, once the person's bookings are given up and their
    sessions ended."""
    rt = runtime.current()
    await service.erase_account(rt.db, rt.events, rt.settings, UUID(user_id))
