"""Database maintenance on schedules (slotease.ops.maintenance); the schedules live beside
the code they run."""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import Blueprint

from slotease.appointments import service as appointments_service
from slotease.auth import service as auth_service
from slotease.jobs import runtime
from slotease.jobs.queues import maintenance_task
from slotease.ops import maintenance

blueprint = Blueprint()


@blueprint.periodic(cron=maintenance.REFRESH_CRON)
@blueprint.task(**maintenance_task("ops.refresh_analytics"))
async def refresh_analytics(timestamp: int) -> None:
    rt = runtime.current()
    await maintenance.refresh_views_if_due(rt.db, rt.settings, datetime.now().astimezone())


@blueprint.periodic(cron=maintenance.PARTITIONS_CRON)
@blueprint.task(**maintenance_task("ops.maintain_partitions"))
async def maintain_partitions(timestamp: int) -> None:
    rt = runtime.current()
    await maintenance.maintain_partitions(rt.db, rt.settings, datetime.now(UTC))


@blueprint.periodic(cron=maintenance.ANALYZE_CRON)
@blueprint.task(**maintenance_task("ops.analyze_hot_tables"))
async def analyze_hot_tables(timestamp: int) -> None:
    await maintenance.analyze_hot_tables(runtime.current().db)


@blueprint.periodic(cron="41 * * * *")
@blueprint.task(**maintenance_task("ops.purge_expired_keys"))
async def purge_expired_keys(timestamp: int) -> None:
    """Expired idempotency keys and refresh-token families."""
    db = runtime.current().db
    await appointments_service.purge_expired_idempotency_keys(db)
    await auth_service.purge_expired_refresh_tokens(db)


@blueprint.periodic(cron=maintenance.TEXT_RETENTION_CRON)
@blueprint.task(**maintenance_task("ops.apply_text_retention"))
async def apply_text_retention(timestamp: int) -> None:
    """Webhook payloads, report contents, notification bodies and feedback comments past
    their SLOTEASE_RETENTION_* period lose their words."""
    rt = runtime.current()
    await maintenance.apply_text_retention(rt.db, rt.settings, datetime.now(UTC))
