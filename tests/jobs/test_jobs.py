"""The job machinery: nothing lost when a worker dies mid-job, failed jobs retried by hand,
the backoff spread by jitter, the job tables closed to the API roles."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from slotease.config import Settings
from slotease.jobs import service
from slotease.jobs.retry import JitteredBackoff
from tests.factories import Owner, make_organization, make_user
from tests.notifications.support import jobs, run_jobs, worker_app

pytestmark = pytest.mark.anyio


def _in_app_notification(owner: Owner) -> uuid.UUID:
    staff = make_user(owner)
    customer = make_user(owner)
    org = make_organization(owner, staff)
    notification = uuid.uuid4()
    owner.execute(
        "insert into public.notifications (id, organization_id, user_id, channel, subject, body)"
        " values (%s, %s, %s, 'in_app', 'Hi', 'Hello')",
        (notification, org, customer.id),
    )
    return notification


def _enqueue_doing(owner: Owner, notification: uuid.UUID, worker_id: int | None) -> None:
    row = owner.execute(
        "select app.enqueue_job('notifications', 'notifications.deliver', %s::jsonb)",
        (f'{{"ids": ["{notification}"]}}',),
    ).fetchone()
    assert row is not None
    owner.execute(
        "update public.procrastinate_jobs set status = 'doing', worker_id = %s where id = %s",
        (worker_id, row[0]),
    )


async def test_a_job_of_a_dead_worker_runs_again(owner: Owner, settings: Settings) -> None:
    owner.execute("delete from public.procrastinate_jobs")
    notification = _in_app_notification(owner)
    # A worker took the job, then died: its heartbeat stopped long ago.
    worker = owner.execute(
        "insert into public.procrastinate_workers (last_heartbeat)"
        " values (now() - interval '10 minutes') returning id"
    ).fetchone()
    assert worker is not None
    _enqueue_doing(owner, notification, worker[0])
    async with worker_app(settings) as (app, _):
        recovered = await service.recover_stalled_jobs(app, service.stalled_after_seconds(settings))
        assert recovered == [jobs(owner, "notifications.deliver")[0][0]]
        assert [j[2] for j in jobs(owner, "notifications.deliver")] == ["todo"]
        await run_jobs(app)
    assert [j[2] for j in jobs(owner, "notifications.deliver")] == ["succeeded"]
    assert owner.execute(
        "select status from public.notifications where id = %s", (notification,)
    ).fetchone() == ("delivered",)


async def test_failed_jobs_are_listed_and_retried(owner: Owner, settings: Settings) -> None:
    owner.execute("delete from public.procrastinate_jobs")
    notification = _in_app_notification(owner)
    row = owner.execute(
        "select app.enqueue_job('notifications', 'notifications.deliver', %s::jsonb)",
        (f'{{"ids": ["{notification}"]}}',),
    ).fetchone()
    assert row is not None
    owner.execute("update public.procrastinate_jobs set status = 'failed' where id = %s", (row[0],))
    async with worker_app(settings) as (app, _):
        failed = await service.failed_jobs(app)
        assert [(j.id, j.task) for j in failed] == [(row[0], "notifications.deliver")]
        await service.retry_failed(app, row[0])
        with pytest.raises(LookupError):
            await service.retry_failed(app, row[0])  # no longer failed
        await run_jobs(app)
    assert [j[2] for j in jobs(owner)] == ["succeeded"]


def test_backoff_grows_exponentially_with_jitter() -> None:
    backoff = JitteredBackoff(max_attempts=10, base_seconds=2, cap_seconds=600)
    for attempts in range(9):
        ceiling = min(600, 2 * 2**attempts)
        delays = {backoff.delay(attempts) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, not one synchronized value


async def test_the_job_tables_are_closed_to_the_api_roles(owner: Owner, app_conninfo: str) -> None:
    async with await psycopg.AsyncConnection.connect(app_conninfo) as conn:
        for role in ("anon", "authenticated"):
            await conn.execute(f"set role {role}")
            for statement in (
                "select 1 from public.procrastinate_jobs",
                "insert into public.procrastinate_jobs (queue_name, task_name) values ('q', 't')",
                "select public.procrastinate_defer_jobs_v1(array[]::public.procrastinate_job_to_defer_v1[])",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute(statement)
                await conn.rollback()
