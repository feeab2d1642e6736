"""Queues and priorities: an interactive message is picked before a bulk backlog, and a
retry waits behind every first attempt."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from procrastinate import App

from slotease.config import Settings
from slotease.jobs.queues import BULK, INTERACTIVE, priority_of
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


def _started(owner: Owner) -> list[int]:
    """Job ids in the order the worker started them."""
    rows = owner.execute(
        "select job_id from public.procrastinate_events where type = 'started' order by id"
    ).fetchall()
    return [int(row[0]) for row in rows]


async def _run_until(app: App, owner: Owner, job_id: int) -> None:
    """Run one worker slot until job `job_id` has succeeded, then stop it."""
    worker = asyncio.create_task(
        app.run_worker_async(install_signal_handlers=False, listen_notify=False, concurrency=1)
    )
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            row = owner.execute(
                "select status::text from public.procrastinate_jobs where id = %s", (job_id,)
            ).fetchone()
            if row == ("succeeded",):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} did not run")
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker


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
    owner.execute(
        "update public.procrastinate_jobs set queue_name = %s, priority = %s",
        (INTERACTIVE, priority_of(INTERACTIVE)),
    )
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
