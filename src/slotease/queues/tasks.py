"""The queues' periodic job."""

from __future__ import annotations

from procrastinate import Blueprint

from slotease.jobs import runtime
from slotease.jobs.queues import maintenance_task
from slotease.queues import service

blueprint = Blueprint()


@blueprint.periodic(cron="* * * * *")
@blueprint.task(**maintenance_task("queues.expire_called_tickets"))
async def expire_called_tickets(timestamp: int) -> None:
    rt = runtime.current()
    await service.expire_called_tickets_on_time(rt.db, rt.events)
