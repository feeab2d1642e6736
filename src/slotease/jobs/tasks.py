"""The one procrastinate App and every task and periodic task it runs. Add new tasks here (or
in a module imported here), with an explicit `name`: request code enqueues by that name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from procrastinate import App, JobContext, PsycopgConnector

from slotease.analytics import service as analytics_service
from slotease.appointments import service as appointments_service
from slotease.auth import account_mail
from slotease.auth import service as auth_service
from slotease.jobs import runtime
from slotease.jobs.queues import MAINTENANCE, priority_of
from slotease.jobs.retry import JitteredBackoff
from slotease.jobs.service import recover_stalled_jobs
from slotease.notifications.automatic import (
    NOTIFY_TASK,
    REMIND_TASK,
    create_for_event,
    create_reminder,
    source_of_job,
)
from slotease.notifications.channels.base import TransientDeliveryError
from slotease.notifications.delivery import DELIVER_TASK
from slotease.ops import maintenance
from slotease.organizations import invitation_mail
from slotease.queues import service as queues_service
from slotease.waitlist import service as waitlist_service
from slotease.webhooks import delivery as webhooks

# The connector is replaced by the configured one when a worker starts (App.with_connector).
jobs = App(connector=PsycopgConnector())
# Its attempt budget comes from SLOTEASE_JOB_MAX_ATTEMPTS when a worker starts.
RETRY = JitteredBackoff(max_attempts=8)
# The periodic tasks: procrastinate defers them itself, with the queue and priority set here.
_MAINTENANCE: dict[str, Any] = {"queue": MAINTENANCE, "priority": priority_of(MAINTENANCE)}


class DeliveryPending(TransientDeliveryError):
    """Some messages of the job met a transient failure: the job runs again for them."""


async def _deliver(context: JobContext, ids: list[UUID]) -> None:
    assert context.job is not None
    rt = runtime.current()
    pending = await rt.deliverer.deliver(
        ids, last_attempt=RETRY.is_last_attempt(context.job), queue=context.job.queue
    )
    if pending:
        raise DeliveryPending(f"{len(pending)} message(s) to try again")


@jobs.task(name=DELIVER_TASK, pass_context=True, retry=RETRY)
async def deliver(context: JobContext, ids: list[str]) -> None:
    await _deliver(context, [UUID(i) for i in ids])


@jobs.task(name=NOTIFY_TASK, pass_context=True, retry=RETRY)
async def notify_event(context: JobContext, event: str, subject_id: str) -> None:
    """`subject_id` names the event's subject; what the message says is read from the database."""
    assert context.job is not None
    assert context.job.id is not None
    rt = runtime.current()
    ids = await create_for_event(
        rt.db, rt.settings, event, UUID(subject_id), source_of_job(context.job.id)
    )
    await _deliver(context, ids)


@jobs.task(name=REMIND_TASK, pass_context=True, retry=RETRY)
async def remind(context: JobContext, appointment_id: str, starts_at: str, offset: str) -> None:
    assert context.job is not None
    assert context.job.id is not None
    ids = await create_reminder(
        runtime.current().db,
        UUID(appointment_id),
        datetime.fromisoformat(starts_at),
        source_of_job(context.job.id),
    )
    await _deliver(context, ids)


@jobs.task(name=invitation_mail.INVITATION_TASK, retry=RETRY)
async def send_invitation(invitation_id: str, organization_id: str, token: str) -> None:
    rt = runtime.current()
    await invitation_mail.send_invitation(
        rt.db, rt.settings, rt.deliverer, UUID(invitation_id), UUID(organization_id), token
    )


@jobs.task(name=account_mail.RESET_TASK, retry=RETRY)
async def send_password_reset(token_id: str, token: str) -> None:
    rt = runtime.current()
    await account_mail.send_account_mail(
        rt.db, rt.settings, rt.deliverer, account_mail.RESET_TASK, UUID(token_id), token
    )


@jobs.task(name=account_mail.VERIFICATION_TASK, retry=RETRY)
async def send_verification(token_id: str, token: str) -> None:
    rt = runtime.current()
    await account_mail.send_account_mail(
        rt.db, rt.settings, rt.deliverer, account_mail.VERIFICATION_TASK, UUID(token_id), token
    )


@jobs.task(name=webhooks.DELIVER_TASK, retry=RETRY)
async def deliver_webhook(delivery_id: str) -> None:
    """One attempt; a failed one schedules the next itself (see webhooks.delivery)."""
    rt = runtime.current()
    await webhooks.attempt(rt.db, rt.settings, UUID(delivery_id))


@jobs.periodic(cron="* * * * *")
@jobs.task(
    name="jobs.retry_stalled", queueing_lock="jobs.retry_stalled", pass_context=True, **_MAINTENANCE
)
async def retry_stalled(context: JobContext, timestamp: int) -> None:
    """A worker that died mid-job leaves it `doing`; once its heartbeat is stale the job
    runs again (procrastinate's stalled-job recipe)."""
    await recover_stalled_jobs(context.app)


@jobs.periodic(cron="17 3 * * *")
@jobs.task(
    name="jobs.remove_old", queueing_lock="jobs.remove_old", pass_context=True, **_MAINTENANCE
)
async def remove_old(context: JobContext, timestamp: int) -> None:
    """Finished jobs are kept a week for `slotease jobs failed` and inspection."""
    await context.app.job_manager.delete_old_jobs(nb_hours=24 * 7, include_failed=False)


# Database maintenance and analytics (slotease.ops.maintenance); schedules live beside the code.
@jobs.periodic(cron=maintenance.REFRESH_CRON)
@jobs.task(name="ops.refresh_analytics", queueing_lock="ops.refresh_analytics", **_MAINTENANCE)
async def refresh_analytics(timestamp: int) -> None:
    rt = runtime.current()
    await maintenance.refresh_views_if_due(rt.db, rt.settings, datetime.now().astimezone())


@jobs.periodic(cron=maintenance.PARTITIONS_CRON)
@jobs.task(name="ops.maintain_partitions", queueing_lock="ops.maintain_partitions", **_MAINTENANCE)
async def maintain_partitions(timestamp: int) -> None:
    rt = runtime.current()
    await maintenance.maintain_partitions(rt.db, rt.settings, datetime.now(UTC))


@jobs.periodic(cron=maintenance.ANALYZE_CRON)
@jobs.task(name="ops.analyze_hot_tables", queueing_lock="ops.analyze_hot_tables", **_MAINTENANCE)
async def analyze_hot_tables(timestamp: int) -> None:
    await maintenance.analyze_hot_tables(runtime.current().db)


# Expiry on time, whether or not anyone calls the API (the API also applies it where a write
# depends on it: accepting an offer, calling the next ticket).
@jobs.periodic(cron="* * * * *")
@jobs.task(name="waitlist.expire_offers", queueing_lock="waitlist.expire_offers", **_MAINTENANCE)
async def expire_waitlist_offers(timestamp: int) -> None:
    rt = runtime.current()
    await waitlist_service.expire_offers_on_time(rt.db, rt.settings.waitlist_offer_minutes)


@jobs.periodic(cron="* * * * *")
@jobs.task(
    name="queues.expire_called_tickets",
    queueing_lock="queues.expire_called_tickets",
    **_MAINTENANCE,
)
async def expire_called_tickets(timestamp: int) -> None:
    await queues_service.expire_called_tickets_on_time(runtime.current().db)


@jobs.periodic(cron="41 * * * *")
@jobs.task(name="ops.purge_expired_keys", queueing_lock="ops.purge_expired_keys", **_MAINTENANCE)
async def purge_expired_keys(timestamp: int) -> None:
    """Expired idempotency keys and refresh-token families."""
    db = runtime.current().db
    await appointments_service.purge_expired_idempotency_keys(db)
    await auth_service.purge_expired_refresh_tokens(db)


@jobs.task(name=analytics_service.REPORT_TASK, retry=RETRY)
async def generate_report(report_id: str) -> None:
    """Enqueued with the report request; a failed generation is recorded on the report."""
    await analytics_service.generate_report(runtime.current().db, UUID(report_id))
