"""Queues and priorities: an interactive message is picked before a bulk backlog, and a
retry waits behind every first attempt."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from procrastinate import App
from psycopg.types.json import Jsonb

from slotease.config import Settings
from slotease.jobs.queues import BULK, INTERACTIVE, priority_of
from slotease.jobs.worker import interactive_lane, worker_options
from slotease.kit.background import running
from tests.appointments.arrange import make_clinic, soon
from tests.factories import Owner, make_organization, make_user
from tests.notifications.support import (
    Mailbox,
    jobs,
    queue_delivery,
    run_jobs,
    with_smtp,
    worker_app,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]

BACKLOG = 3000


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1])


def _bulk_backlog(owner: Owner, count: int) -> None:
    """`count` bulk delivery jobs, each of one batch with nothing left to send."""
    owner.execute(
        "select public.procrastinate_defer_jobs_v1(array(select row('bulk',"
        " 'notifications.deliver', %s, null, null, '{\"ids\": []}'::jsonb,"
        " null)::public.procrastinate_job_to_defer_v1 from generate_series(1, %s)))",
        (priority_of(BULK), count),
    )


def _status(owner: Owner, job_id: int) -> str | None:
    row = owner.execute(
        "select status::text from public.procrastinate_jobs where id = %s", (job_id,)
    ).fetchone()
    return None if row is None else str(row[0])


async def _wait_for(owner: Owner, job_id: int, status: str) -> None:
    deadline = time.monotonic() + 30
    while _status(owner, job_id) != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        await asyncio.sleep(0.02)


def _started(owner: Owner) -> list[int]:
    """Job ids in the order the worker started them."""
    rows = owner.execute(
        "select job_id from public.procrastinate_events where type = 'started' order by id"
    ).fetchall()
    return [int(row[0]) for row in rows]


async def _run_until(app: App, owner: Owner, job_id: int) -> None:
    """Run one worker slot until job `job_id` has succeeded, then stop it."""
    options = {"install_signal_handlers": False, "listen_notify": False, "concurrency": 1}
    async with running(app.run_worker_async(**options)):
        await _wait_for(owner, job_id, "succeeded")


async def test_an_interactive_email_is_picked_before_a_bulk_backlog(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    clinic = make_clinic(owner)
    customer = make_user(owner)
    response = await client.post(
        "/v1/appointments",
        json={
            "service_id": str(clinic.service_id),
            "starts_at": clinic.at(soon(clinic), "09:30").isoformat(),
        },
        headers=customer.headers,
    )
    assert response.status_code == 201, response.text
    owner.execute("delete from public.procrastinate_jobs")
    _bulk_backlog(owner, BACKLOG)
    response = await client.post(
        "/v1/notifications/send",
        json={"user_id": str(customer.id), "channels": ["email"], "subject": "Hi", "body": "Now"},
        headers=clinic.staff.headers,
    )
    assert response.status_code == 202, response.text
    sent = jobs(owner, "notifications.deliver")[-1]
    assert sent[3] == {"ids": [response.json()["id"]]}
    async with worker_app(settings) as (app, _):
        await _run_until(app, owner, sent[0])
    assert _started(owner)[0] == sent[0]
    assert [rcpt for rcpt, _ in mailbox.messages] == [[customer.email]]
    waiting = owner.execute(
        "select count(*) from public.procrastinate_jobs where queue_name = %s and status = 'todo'",
        (BULK,),
    ).fetchone()
    assert waiting is not None
    assert waiting[0] >= BACKLOG - 5


async def test_a_retried_job_runs_after_fresh_ones(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    customer = make_user(owner)
    org = make_organization(owner, make_user(owner))
    # The mail server refuses the first attempt for now: the job is retried later.
    failing = queue_delivery(owner, org, customer.id)
    refusing = settings.model_copy(update={"smtp_port": 1})
    async with worker_app(refusing) as (app, _):
        await run_jobs(app)
    [retried] = jobs(owner, "notifications.deliver")
    assert retried[2] == "todo"
    assert owner.execute(
        "select priority from public.procrastinate_jobs where id = %s", (retried[0],)
    ).fetchone() == (priority_of(INTERACTIVE, retry=True),)
    # Its time has come, and fresh work arrived meanwhile, bulk work included.
    owner.execute("update public.procrastinate_jobs set scheduled_at = now()")
    _bulk_backlog(owner, 3)
    fresh = queue_delivery(owner, org, customer.id)
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    order = _started(owner)
    assert order[-1] == retried[0]
    assert all(job[2] == "succeeded" for job in jobs(owner))
    statuses = owner.execute(
        "select id, status from public.notifications where id in (%s, %s)", (failing, fresh)
    ).fetchall()
    assert {status for _, status in statuses} == {"sent"}
    assert len(mailbox.messages) == 2


async def test_bulk_jobs_holding_every_slot_leave_the_interactive_lane_free(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    customer = make_user(owner)
    org = make_organization(owner, make_user(owner))
    # One bulk batch of a thousand emails: it holds the only slot of the worker for a while.
    batch = owner.execute(
        "insert into public.notifications (organization_id, user_id, channel, subject, body)"
        " select %s, %s, 'email', 'News', 'Read me' from generate_series(1, 1000) returning id",
        (org, customer.id),
    ).fetchall()
    bulk = owner.execute(
        "select app.enqueue_job(%s, 'notifications.deliver', %s, priority => %s)",
        (BULK, Jsonb({"ids": [str(row[0]) for row in batch]}), priority_of(BULK)),
    ).fetchone()
    assert bulk is not None
    one_slot = settings.model_copy(
        update={"worker_concurrency": 1, "worker_interactive_concurrency": 1}
    )
    async with (
        worker_app(one_slot) as (app, _),
        interactive_lane(app, one_slot),
        running(app.run_worker_async(**worker_options(one_slot))),
    ):
        await _wait_for(owner, bulk[0], "doing")
        message = str(queue_delivery(owner, org, customer.id))
        [interactive] = [job for job in jobs(owner) if job[3] == {"ids": [message]}]
        await _wait_for(owner, interactive[0], "succeeded")
        assert _status(owner, bulk[0]) == "doing"
    assert any(message["Subject"] == "Hi" for _, message in mailbox.messages)
