"""The waitlist's periodic job."""

from __future__ import annotations

from procrastinate import Blueprint

from slotease.jobs import runtime
from slotease.jobs.queues import maintenance_task
from slotease.waitlist import service

blueprint = Blueprint()


# Expiry on time, whether or not anyone calls the API (the API also applies it where a write
# depends on it: accepting an offer, calling the next ticket).
@blueprint.periodic(cron="* * * * *")
@blueprint.task(**maintenance_task("waitlist.expire_offers"))
async def expire_waitlist_offers(timestamp: int) -> None:
    rt = runtime.current()
    await service.expire_offers_on_time(rt.db, rt.events)
