"""How long an interactive notification waits while a bulk send is in progress.

A real API process (no worker in it) and a separate `slotease worker` process, on a bench
database; a local SMTP sink takes the emails. An admin sends `--bulk` emails in one
`POST /v1/notifications/send-bulk`, and while its delivery jobs run, an in-app and an email
notification are sent to one recipient in turn every `--every` seconds. Measured:
in-app: from the request to the `notification.created` event on the recipient's `user:`
WebSocket topic; email: from the request to the start of its delivery job (procrastinate's
`started` event).

    BENCH_SERVER_URL=... .venv/bin/python -m bench.notify_latency [--bulk 10000]
        [--samples 100] [--every 0.1] [--interactive-concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
from websockets.asyncio.client import ClientConnection, connect

from bench.common import fresh_database, machine, percentile, worker_role_conninfo
from bench.notifications_bulk import seed, smtp_sink
from bench.server import BENCH_JWT_SECRET, api_server
from slotease.auth.tokens import mint_access_token


@contextmanager
def worker_process(owner: str, smtp_port: int, interactive_concurrency: int) -> Iterator[None]:
    """`slotease worker` serving every queue, as deployed beside the API."""
    executable = shutil.which("slotease", path=str(Path(sys.executable).parent))
    assert executable is not None, "slotease is not installed in this environment"
    env = {
        **os.environ,
        "DATABASE_URL": owner,
        "SLOTEASE_WORKER_DATABASE_URL": worker_role_conninfo(owner),
        "SLOTEASE_SMTP_HOST": "127.0.0.1",
        "SLOTEASE_SMTP_PORT": str(smtp_port),
        "SLOTEASE_SMTP_STARTTLS": "false",
        "SLOTEASE_WORKER_INTERACTIVE_CONCURRENCY": str(interactive_concurrency),
        "SLOTEASE_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([executable, "worker"], env=env)
    try:
        # Measured from when its workers (the lane's included) have registered.
        for _ in range(300):
            with psycopg.connect(owner) as conn:
                row = conn.execute("select count(*) from public.procrastinate_workers").fetchone()
            if row is not None and row[0] >= 1 + min(interactive_concurrency, 1):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the worker did not start")
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def token_of(owner: str, user_id: object) -> str:
    with psycopg.connect(owner) as conn:
        row = conn.execute("select email from auth.users where id = %s", (user_id,)).fetchone()
    assert row is not None
    return mint_access_token(
        BENCH_JWT_SECRET,
        user_id=user_id,
        email=row[0],
        ttl_seconds=3600,  # type: ignore[arg-type]
    )


async def watch(ws: ClientConnection, seen: dict[str, float]) -> None:
    """Record when each notification's event arrives."""
    async for frame in ws:
        message = json.loads(frame)
        if message.get("event") == "notification.created":
            seen.setdefault(message["payload"]["id"], time.time())


def job_starts(owner: str, ids: list[str]) -> dict[str, datetime]:
    """When the delivery job of each notification in `ids` started."""
    with psycopg.connect(owner) as conn:
        rows = conn.execute(
            "select j.args -> 'ids' ->> 0, min(e.at) from public.procrastinate_jobs j"
            " join public.procrastinate_events e on e.job_id = j.id and e.type = 'started'"
            " where j.args -> 'ids' ->> 0 = any (%s) group by 1",
            (ids,),
        ).fetchall()
    return {row[0]: row[1] for row in rows}


def bulk_left(owner: str) -> int:
    with psycopg.connect(owner) as conn:
        row = conn.execute(
            "select count(*) from public.notifications where batch_id is not null"
            " and status = 'queued'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def report(label: str, delays: list[float], expected: int) -> None:
    if len(delays) < expected:
        print(f"| {label} | {len(delays)} of {expected} arrived | | |")
        return
    p50, p95 = percentile(delays, 0.5) * 1000, percentile(delays, 0.95) * 1000
    print(f"| {label} | {len(delays)} | {p50:,.0f} | {p95:,.0f} |")


async def measure(owner: str, bulk: int, samples: int, every: float, lane: int) -> None:
    org, admin, users = seed(owner, bulk)
    recipient = users[0]
    admin_headers = {"Authorization": f"Bearer {token_of(owner, admin)}"}
    with (
        smtp_sink() as (mailbox, port),
        api_server(owner) as url,
        worker_process(owner, port, lane),
    ):
        ws_url = (
            url.replace("http://", "ws://") + f"/v1/realtime?token={token_of(owner, recipient)}"
        )
        async with (
            httpx.AsyncClient(base_url=url, headers=admin_headers, timeout=30) as http,
            connect(ws_url) as ws,
        ):
            await ws.send(json.dumps({"type": "subscribe", "topic": f"user:{recipient}"}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            seen: dict[str, float] = {}
            watcher = asyncio.create_task(watch(ws, seen))
            response = await http.post(
                "/v1/notifications/send-bulk",
                json={
                    "organization_id": str(org),
                    "user_ids": [str(u) for u in users],
                    "channels": ["email"],
                    "subject": "Closed on Friday",
                    "body": "The clinic is closed this Friday; your booking is moved.",
                },
            )
            assert response.status_code == 202, response.text
            sent_at: dict[str, float] = {}
            in_app: list[str] = []
            email: list[str] = []
            for index in range(samples):
                channel = "in_app" if index % 2 == 0 else "email"
                started = time.time()
                response = await http.post(
                    "/v1/notifications/send",
                    json={
                        "user_id": str(recipient),
                        "channels": [channel],
                        "subject": "Your turn soon",
                        "body": "Please come to the desk.",
                    },
                )
                assert response.status_code == 202, response.text
                notification = response.json()["id"]
                sent_at[notification] = started
                (in_app if channel == "in_app" else email).append(notification)
                await asyncio.sleep(max(0.0, every - (time.time() - started)))
            await asyncio.sleep(2)
            left = bulk_left(owner)
            watcher.cancel()
        # The emails of the samples must have started: wait for the worker a little.
        for _ in range(120):
            starts = job_starts(owner, email)
            if len(starts) == len(email):
                break
            await asyncio.sleep(0.5)
        print(f"Machine: {machine()}; SMTP messages received: {mailbox.messages:,}")
    in_app_delays = [seen[i] - sent_at[i] for i in in_app if i in seen]
    email_delays = [starts[i].timestamp() - sent_at[i] for i in email if i in starts]
    print(
        f"bulk send of {bulk:,} emails; {samples} interactive sends every {every * 1000:.0f} ms;"
        f" interactive lane {lane} slot(s); bulk emails still queued after the samples: {left:,}"
    )
    print("| delay from the request | samples | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    report("in-app: event on the user: topic", in_app_delays, len(in_app))
    report("email: delivery job started", email_delays, len(email))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--interactive-concurrency", type=int, default=1)
    args = parser.parse_args()
    owner = fresh_database("slotease_bench_latency")
    asyncio.run(measure(owner, args.bulk, args.samples, args.every, args.interactive_concurrency))


if __name__ == "__main__":
    main()
