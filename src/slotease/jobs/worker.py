"""Running the jobs: the App with every feature's tasks, the connector, the runtime the tasks
use, and the worker itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from procrastinate import App, PsycopgConnector
from redis.asyncio import Redis

from slotease.analytics import tasks as analytics_tasks
from slotease.auth import tasks as auth_tasks
from slotease.config import Settings
from slotease.db.database import Database
from slotease.db.pools import worker_database, worker_session_options
from slotease.db.urls import worker_conninfo
from slotease.jobs import runtime
from slotease.jobs import tasks as jobs_tasks
from slotease.jobs.queues import INTERACTIVE
from slotease.jobs.retry import RETRY
from slotease.jobs.service import stalled_after_seconds
from slotease.keys.service import open_keyring
from slotease.kit.background import running
from slotease.kit.events import EventBus
from slotease.notifications import tasks as notifications_tasks
from slotease.notifications.delivery import build_deliverer
from slotease.ops import tasks as ops_tasks
from slotease.organizations import tasks as organizations_tasks
from slotease.privacy import tasks as privacy_tasks
from slotease.queues import tasks as queues_tasks
from slotease.waitlist import tasks as waitlist_tasks
from slotease.webhooks import tasks as webhooks_tasks

# The one App, gathering every feature's tasks: the only module of jobs/ that imports
# features. Its connector is replaced by the configured one when a worker starts.
jobs = App(connector=PsycopgConnector())
for _feature in (
    jobs_tasks,
    notifications_tasks,
    organizations_tasks,
    webhooks_tasks,
    analytics_tasks,
    ops_tasks,
    waitlist_tasks,
    queues_tasks,
    privacy_tasks,
    auth_tasks,
):
    jobs_tasks.add_tasks(jobs, _feature.blueprint)


def job_slots(settings: Settings) -> int:
    """How many jobs a worker process runs at once, its interactive lane included."""
    return settings.worker_concurrency + settings.worker_interactive_concurrency


def connector(settings: Settings) -> PsycopgConnector:
    """The worker's login role, switched to service_role at connection start: the only role
    besides the owner that may touch procrastinate's tables."""
    return PsycopgConnector(
        conninfo=worker_conninfo(settings),
        kwargs={"options": f"-c role=service_role {worker_session_options(settings)}"},
        min_size=1,
        max_size=job_slots(settings) + 2,
    )


@asynccontextmanager
async def job_app(
    settings: Settings, db: Database, events: EventBus, *, redis: Redis | None = None
) -> AsyncIterator[App]:
    """The open App with the task runtime installed; `db`, on the worker's login role, must
    already be open. The tasks publish on `events`: the application's bus beside the API, a
    bus of their own in a worker process."""
    RETRY.max_attempts = settings.job_max_attempts
    # The worker opens the sealed fields it sends: webhook secrets, phones, push tokens.
    await open_keyring(settings, db, as_service=True)
    async with httpx.AsyncClient(timeout=settings.provider_timeout_seconds) as http:
        deliverer = build_deliverer(settings, db, http, events, redis)
        uninstall = runtime.install(
            runtime.Runtime(settings=settings, db=db, events=events, resources=(deliverer,))
        )
        try:
            with jobs.replace_connector(connector(settings)) as app:
                async with app.open_async():
                    yield app
        finally:
            uninstall()


def worker_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {
        "concurrency": settings.worker_concurrency,
        "install_signal_handlers": False,
        "update_heartbeat_interval": settings.worker_heartbeat_seconds,
        "stalled_worker_timeout": stalled_after_seconds(settings),
        **overrides,
    }


@asynccontextmanager
async def interactive_lane(
    app: App, settings: Settings, queues: Iterable[str] | None = None
) -> AsyncIterator[None]:
    """While the block runs, a second worker of the interactive queue alone, beside the block's
    worker of `queues` (None: all). That one already takes interactive jobs first (the highest
    priority), but only when a slot frees; its slots may all be held by long bulk jobs. A
    worker of chosen queues gets no lane: give it `interactive` to have one."""
    if queues is not None or settings.worker_interactive_concurrency == 0:
        yield
        return
    options = worker_options(
        settings,
        queues=[INTERACTIVE],
        concurrency=settings.worker_interactive_concurrency,
        name="interactive",
    )
    async with running(app.run_worker_async(**options)):
        yield


@asynccontextmanager
async def in_process_worker(
    settings: Settings, events: EventBus, *, redis: Redis | None = None
) -> AsyncIterator[Database]:
    """A worker running beside the API in the same event loop (`slotease serve`), on a pool of
    its own login role; yields that pool for the process's other system work."""
    db = worker_database(settings, max_size=job_slots(settings) + 1)
    await db.open()
    try:
        async with (
            job_app(settings, db, events, redis=redis) as app,
            interactive_lane(app, settings),
            running(app.run_worker_async(**worker_options(settings))),
        ):
            yield db
    finally:
        await db.close()
