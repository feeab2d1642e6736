"""A bulk send: `--count` notifications (half in-app, half email; one of each per recipient)
enqueued by the service behind `POST /v1/notifications/send-bulk`, then delivered by the
procrastinate worker in-process (the `slotease serve` setup, `SLOTEASE_WORKER_CONCURRENCY`
tasks) to a local SMTP server that accepts and counts the messages. In the same run, the
same worker setup processes bare no-op jobs, to set each delivery job against the job
machinery's own cost per job.

    .venv/bin/python -m bench.notifications_bulk [--count 5000] [--bare-jobs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.common import (
    app_role_conninfo,
    drop_database,
    fresh_database,
    machine,
    worker_role_conninfo,
)
from bench.server import free_port
from slotease.config import Settings
from slotease.db.database import SERVICE, Database, DbIdentity
from slotease.jobs import repository as jobs_repo
from slotease.jobs.worker import job_app, jobs, worker_options
from slotease.kit.events import EventBus
from slotease.notifications import service
from slotease.notifications.delivery import BULK_QUEUE
from slotease.notifications.schemas import BulkRequest

BARE_TASK = "bench.noop"
BARE_QUEUE = "bench"


@jobs.task(name=BARE_TASK, queue=BARE_QUEUE)
async def noop() -> None:
    """What every job pays regardless of its work: fetch, run, record the outcome."""


@dataclass
class Counter:
    """An SMTP sink: accepts every message and only counts it, in a count shared with the
    process that started it."""

    count: Synchronized[int]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.count.get_lock():
            self.count.value += 1
        return "250 OK"

    @property
    def messages(self) -> int:
        return self.count.value


def _serve_smtp(count: Synchronized[int], port: int, stop: EventType) -> None:
    controller = Controller(Counter(count), hostname="127.0.0.1", port=port)
    controller.start()
    stop.wait()
    controller.stop()


@contextmanager
def smtp_sink() -> Iterator[tuple[Counter, int]]:
    """The sink in a process of its own, as a mail server is: in the sender's process its
    thread would wait for the sender's GIL at every SMTP reply."""
    count: Synchronized[int] = multiprocessing.Value("i", 0)
    stop = multiprocessing.Event()
    port = free_port()
    server = multiprocessing.Process(target=_serve_smtp, args=(count, port, stop), daemon=True)
    server.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield Counter(count), port
    finally:
        stop.set()
        server.join(5)


def seed(owner: str, recipients: int) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """An organization, its admin, and `recipients` customers with an email address and a
    ticket each (send-bulk only reaches people who deal with the organization)."""
    with psycopg.connect(owner, autocommit=True) as conn:
        org = conn.execute(
            "insert into public.organizations (name, slug, kind, timezone)"
            " values ('Bench clinic', 'bench-clinic', 'clinic', 'Europe/Paris') returning id"
        ).fetchone()[0]  # type: ignore[index]
        admin = conn.execute(
            "insert into auth.users (email) values ('admin@bench.test') returning id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into public.organization_members (organization_id, user_id, role)"
            " values (%s, %s, 'admin')",
            (org, admin),
        )
        queue = conn.execute(
            "insert into public.queues (organization_id, name, prefix)"
            " values (%s, 'Reception', 'R') returning id",
            (org,),
        ).fetchone()[0]  # type: ignore[index]
        # Verified addresses (email goes to no other) of people who accept the
        # organization's news (a bulk send needs the marketing opt-in).
        users = [
            row[0]
            for row in conn.execute(
                "insert into auth.users (email, email_confirmed_at)"
                " select 'customer' || g || '@bench.test', now()"
                " from generate_series(1, %s) g returning id",
                (recipients,),
            ).fetchall()
        ]
        conn.execute(
            "insert into public.consent_events (user_id, purpose, granted, source)"
            " select u, 'marketing', true, 'bench' from unnest(%s::uuid[]) u",
            (users,),
        )
        # Seeding is not what is measured: bulk rows skip the audit trigger.
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "insert into public.tickets (organization_id, queue_id, user_id, service_date, number)"
            " select %s, %s, u, current_date, row_number() over ()"
            " from unnest(%s::uuid[]) u",
            (org, queue, users),
        )
        conn.execute("set session_replication_role = origin")
        conn.execute("analyze")
    return org, admin, users


@dataclass(frozen=True)
class Run:
    jobs: int
    seconds: float


async def drain(settings: Settings, db: Database, queue: str) -> Run:
    """Run the worker on `queue` until no job is left; how many jobs it finished, how long."""
    async with job_app(settings, db, EventBus()) as app:
        started = time.perf_counter()
        await app.run_worker_async(
            **worker_options(settings, queues=[queue], wait=False, listen_notify=False)
        )
        seconds = time.perf_counter() - started
    async with db.transaction(SERVICE) as conn:
        cursor = await conn.execute(
            "select count(*) filter (where status = 'succeeded') as done, count(*) as total"
            " from public.procrastinate_jobs where queue_name = %s",
            (queue,),
        )
        row = await cursor.fetchone()
    assert row is not None
    assert row["done"] == row["total"], f"unfinished jobs on {queue}: {row}"
    return Run(row["done"], seconds)


async def measure(owner: str, count: int, bare_jobs: int) -> None:
    recipients = count // 2
    org, admin, users = seed(owner, recipients)
    with smtp_sink() as (mailbox, port):
        settings = Settings(
            database_url=owner,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_starttls=False,
        )
        db = Database(app_role_conninfo(owner), min_size=1, max_size=1)
        worker = Database(
            worker_role_conninfo(owner), min_size=1, max_size=settings.worker_concurrency + 2
        )
        await db.open()
        await worker.open()
        try:
            as_admin = DbIdentity(
                role="authenticated", claims={"sub": str(admin), "role": "authenticated"}
            )
            started = time.perf_counter()
            async with db.transaction(as_admin) as conn:
                sent = await service.send_bulk(
                    conn,
                    BulkRequest(
                        organization_id=org,
                        user_ids=users,
                        channels=["in_app", "email"],
                        subject="Closed on Friday",
                        body="The clinic is closed this Friday; your booking is moved.",
                    ),
                )
            enqueue_seconds = time.perf_counter() - started
            bulk = await drain(settings, worker, BULK_QUEUE)

            async with worker.transaction(SERVICE) as conn:
                for _ in range(bare_jobs):
                    await jobs_repo.enqueue(conn, BARE_TASK, {}, queue=BARE_QUEUE)
            bare = await drain(settings, worker, BARE_QUEUE)

            async with worker.transaction(SERVICE) as conn:
                cursor = await conn.execute(
                    "select channel, status, count(*) as n from public.notifications"
                    " where batch_id = %s group by 1, 2 order by 1, 2",
                    (sent.batch_id,),
                )
                outcomes = {(r["channel"], r["status"]): r["n"] for r in await cursor.fetchall()}
        finally:
            await worker.close()
            await db.close()
        emails = mailbox.messages

    total = enqueue_seconds + bulk.seconds
    per_job = bulk.seconds / bulk.jobs
    per_bare = bare.seconds / bare.jobs
    print(f"Machine: {machine()}; worker concurrency {settings.worker_concurrency}")
    print(
        f"{sent.count:,} notifications ({recipients:,} recipients x in_app + email) in "
        f"{bulk.jobs} delivery jobs of up to {service.BATCH_SIZE}"
    )
    print(f"outcomes: {outcomes}; messages at the SMTP server: {emails:,}")
    print("| phase | seconds | notifications/s |")
    print("|---|---|---|")
    print(f"| enqueue (send_bulk, one transaction) | {enqueue_seconds:.2f} | "
          f"{sent.count / enqueue_seconds:,.0f} |")  # fmt: skip
    print(f"| deliver (worker) | {bulk.seconds:.2f} | {sent.count / bulk.seconds:,.0f} |")
    print(f"| total | {total:.2f} | {sent.count / total:,.0f} |")
    print(
        f"\nper delivery job: {per_job * 1000:,.1f} ms ({per_job / service.BATCH_SIZE * 1000:.2f}"
        f" ms per notification); bare no-op job: {per_bare * 1000:.2f} ms "
        f"({bare.jobs:,} jobs in {bare.seconds:.2f} s); job machinery share of a delivery job: "
        f"{per_bare / per_job:.2%}"
    )
    delivered = outcomes.get(("in_app", "delivered"), 0) + outcomes.get(("email", "sent"), 0)
    if delivered != sent.count or emails != recipients:
        raise SystemExit("not every notification went out")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5_000)
    parser.add_argument("--bare-jobs", type=int, default=2_000)
    parser.add_argument("--database", default="slotease_bench_notifications")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    owner = fresh_database(args.database)
    asyncio.run(measure(owner, args.count, args.bare_jobs))
    if not args.keep:
        drop_database(args.database)


if __name__ == "__main__":
    main()
