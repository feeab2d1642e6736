"""The analytics job: generating a requested report."""

from __future__ import annotations

from uuid import UUID

from procrastinate import Blueprint

from slotease.analytics import service
from slotease.jobs import runtime
from slotease.jobs.retry import RETRY

blueprint = Blueprint()


@blueprint.task(name=service.REPORT_TASK, retry=RETRY)
async def generate_report(report_id: str) -> None:
    """Enqueued with the report request; a failed generation is recorded on the report."""
    await service.generate_report(runtime.current().db, UUID(report_id))
