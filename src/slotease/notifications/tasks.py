"""The notification jobs: writing the messages of domain events and reminders, and delivering
them. The deliverer they send through is handed in by the worker (jobs.worker)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from procrastinate import Blueprint, JobContext

from slotease.jobs import runtime
from slotease.jobs.retry import RETRY
from slotease.kit.eventtypes import event_name
from slotease.notifications.automatic import (
    NOTIFY_TASK,
    REMIND_TASK,
    create_for_event,
    create_reminder,
    source_of_job,
)
from slotease.notifications.channels.base import TransientDeliveryError
from slotease.notifications.delivery import DELIVER_TASK, Deliverer

blueprint = Blueprint()


class DeliveryPending(TransientDeliveryError):
    """Some messages of the job met a transient failure: the job runs again for them."""


async def _deliver(context: JobContext, ids: list[UUID]) -> None:
    assert context.job is not None
    deliverer = runtime.current().resource(Deliverer)
    pending = await deliverer.deliver(
        ids, last_attempt=RETRY.is_last_attempt(context.job), queue=context.job.queue
    )
    if pending:
        raise DeliveryPending(f"{len(pending)} message(s) to try again")


@blueprint.task(name=DELIVER_TASK, pass_context=True, retry=RETRY)
async def deliver(context: JobContext, ids: list[str]) -> None:
    await _deliver(context, [UUID(i) for i in ids])


@blueprint.task(name=NOTIFY_TASK, pass_context=True, retry=RETRY)
async def notify_event(context: JobContext, event: str, subject_id: str) -> None:
    """`subject_id` names the event's subject; what the message says is read from the database."""
    assert context.job is not None
    assert context.job.id is not None
    rt = runtime.current()
    ids = await create_for_event(
        rt.db, rt.settings, event_name(event), UUID(subject_id), source_of_job(context.job.id)
    )
    await _deliver(context, ids)


@blueprint.task(name=REMIND_TASK, pass_context=True, retry=RETRY)
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
