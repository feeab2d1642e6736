"""`enqueue_all`: a list of jobs in one statement (`app.enqueue_jobs`), in order, at their
queues' priorities, each checked as `app.enqueue_job` checks a single one; one refused job
refuses the whole statement, so none of the list stays."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg
import pytest
from psycopg.rows import dict_row

from slotease.db.database import IDENTITY_SQL, Connection, identity_params
from slotease.jobs.queues import priority_of
from slotease.jobs.repository import Job, enqueue_all
from tests.appointments.arrange import insert_as_owner, make_clinic, soon
from tests.db.acting import as_user
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio

QUEUE = "notifications"


@pytest.fixture(autouse=True)
def clean_jobs(owner: Owner) -> None:
    owner.execute("delete from public.procrastinate_jobs")


@asynccontextmanager
async def committed_as(app_conninfo: str, user_id: uuid.UUID) -> AsyncIterator[Connection]:
    """A transaction of the API's login role acting as the user, committed at the end."""
    async with (
        await psycopg.AsyncConnection.connect(
            app_conninfo, autocommit=True, row_factory=dict_row
        ) as conn,
        conn.transaction(),
    ):
        await conn.execute(IDENTITY_SQL, identity_params(as_user(user_id)))
        yield cast(Connection, conn)


def _booked(owner: Owner) -> tuple[uuid.UUID, uuid.UUID, datetime]:
    """A customer, their appointment and its start."""
    clinic = make_clinic(owner, capacity=5)
    customer = make_user(owner)
    insert_as_owner(owner, clinic, customer, clinic.at(soon(clinic), "10:00"))
    row = owner.execute(
        "select id, starts_at from public.appointments where customer_id = %s", (customer.id,)
    ).fetchone()
    assert row is not None
    return customer.id, row[0], row[1]


def _notify(appointment: uuid.UUID) -> Job:
    return Job(
        "notifications.notify_event",
        {"event": "appointment.created", "subject_id": str(appointment)},
        queue=QUEUE,
    )


def _stored(owner: Owner) -> list[tuple[Any, ...]]:
    return owner.execute(
        "select task_name, queue_name, priority, scheduled_at, queueing_lock"
        " from public.procrastinate_jobs order by id"
    ).fetchall()


async def test_a_list_is_enqueued_in_order_at_its_priorities(
    owner: Owner, app_conninfo: str
) -> None:
    customer, appointment, starts_at = _booked(owner)
    remind = Job(
        "notifications.remind",
        {"appointment_id": str(appointment), "starts_at": starts_at.isoformat(), "offset": "1h"},
        queue=QUEUE,
        scheduled_at=starts_at - timedelta(hours=1),
        queueing_lock=f"reminder:{appointment}:1h",
    )

    async with committed_as(app_conninfo, customer) as conn:
        await enqueue_all(conn, [_notify(appointment), remind])
        await enqueue_all(conn, [])

    assert _stored(owner) == [
        ("notifications.notify_event", QUEUE, priority_of(QUEUE), None, None),
        (
            "notifications.remind",
            QUEUE,
            priority_of(QUEUE),
            starts_at - timedelta(hours=1),
            f"reminder:{appointment}:1h",
        ),
    ]


async def test_one_refused_job_refuses_the_whole_list(owner: Owner, app_conninfo: str) -> None:
    customer, appointment, _ = _booked(owner)
    _, someone_elses, _ = _booked(owner)

    for refused in (
        _notify(someone_elses),  # an appointment the caller has no business with
        Job("jobs.remove_old", {"timestamp": 0}),  # a task the request path never enqueues
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with committed_as(app_conninfo, customer) as conn:
                await enqueue_all(conn, [_notify(appointment), refused])

    assert _stored(owner) == []
