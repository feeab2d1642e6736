"""Delivering domain events to webhooks.

Request side (`transactional_handler`): inside the change's transaction, one delivery row per
subscribed active webhook and one job per row, so a rolled-back change sends nothing.
Worker side (`attempt`): one POST per job, outside any transaction; its outcome is recorded,
and a failure schedules the next attempt as a new job (exponential backoff with jitter) until
the retry window closes. 410 Gone, or several deliveries in a row that failed for the whole
window, turn the webhook off and tell the organization's admins.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from slotease.config import Settings
from slotease.db.database import SERVICE, Connection, Database
from slotease.jobs import queues
from slotease.jobs import repository as jobs_repo
from slotease.jobs.repository import Job
from slotease.jobs.retry import JitteredBackoff
from slotease.kit.events import DomainEvent
from slotease.kit.eventtypes import WEBHOOK_EVENTS
from slotease.webhooks import repository as repo
from slotease.webhooks.signing import signature_header
from slotease.webhooks.ssrf import UnsafeUrl, target

DELIVER_TASK = "webhooks.deliver"
WEBHOOKS_QUEUE = queues.WEBHOOKS
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "SlotEase-Webhooks/1.0 (+https://slotease.dev)"
# 30 s doubling, at most an hour apart: about 30 attempts over a 24-hour window.
BACKOFF = JitteredBackoff(max_attempts=1_000, base_seconds=30.0, cap_seconds=3600.0)


JOB_LOCK_PREFIX = "webhook:"


def job_lock(delivery_id: UUID) -> str:
    """Both the lock (one attempt of a delivery at a time) and the queueing lock (one waiting
    job per delivery) of its jobs."""
    return f"{JOB_LOCK_PREFIX}{delivery_id}"


async def enqueue_attempt(
    conn: Connection,
    delivery_id: UUID,
    *,
    scheduled_at: datetime | None = None,
    retry: bool = False,
) -> None:
    """`retry`: the next attempt after a failed one, which waits behind every first attempt."""
    await jobs_repo.enqueue(
        conn,
        DELIVER_TASK,
        {"delivery_id": str(delivery_id)},
        queue=WEBHOOKS_QUEUE,
        scheduled_at=scheduled_at,
        lock=job_lock(delivery_id),
        queueing_lock=job_lock(delivery_id),
        retry=retry,
    )


async def transactional_handler(conn: Connection, event: DomainEvent) -> None:
    organization_id = event.payload.get("organization_id")
    if event.name not in WEBHOOK_EVENTS or not organization_id:
        return
    # The deliveries and their first attempts in one statement, lock and queueing lock
    # `job_lock(delivery)` as `enqueue_attempt` gives them.
    await repo.record_deliveries(
        conn,
        UUID(str(organization_id)),
        event.name,
        event.payload,
        attempt=Job(DELIVER_TASK, queue=WEBHOOKS_QUEUE).spec(),
        lock_prefix=JOB_LOCK_PREFIX,
    )


@dataclass(frozen=True)
class Outcome:
    response_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    # Refused before sending (the address is not allowed): no retry can help.
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300


def body_of(row: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": str(row["id"]),
            "event": row["event"],
            "created_at": row["created_at"].isoformat(),
            "organization_id": str(row["organization_id"]),
            "data": row["payload"],
        },
        separators=(",", ":"),
    ).encode()


async def post(row: dict[str, Any], settings: Settings) -> Outcome:
    """One signed POST to the checked address of the webhook's URL; redirects are not
    followed and at most MAX_RESPONSE_BYTES of the answer are read."""
    try:
        where = await target(row["url"], allow_private=settings.allow_private_webhooks)
    except UnsafeUrl as exc:
        return Outcome(error=f"Refused: {exc}", refused=True)
    body = body_of(row)
    secrets = [row["secret"], *([row["previous_secret"]] if row["previous_secret"] else [])]
    headers = {
        "Host": where.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-SlotEase-Event": row["event"],
        "X-SlotEase-Delivery": str(row["id"]),
        "X-SlotEase-Signature": signature_header(secrets, int(time.time()), body),
    }
    started = time.perf_counter()
    try:
        # trust_env off: a proxy from the environment would connect to the name, not the
        # checked address. The overall deadline also bounds an answer that trickles in.
        async with (
            asyncio.timeout(settings.webhook_timeout_seconds),
            httpx.AsyncClient(
                timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
            ) as http,
            http.stream(
                "POST",
                where.url,
                content=body,
                headers=headers,
                extensions={"sni_hostname": where.server_name},
            ) as response,
        ):
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
    except (httpx.TimeoutException, TimeoutError):
        return Outcome(latency_ms=_since(started), error="Timed out.")
    except httpx.HTTPError as exc:
        return Outcome(latency_ms=_since(started), error=f"{type(exc).__name__}: {exc}"[:500])
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return Outcome(response_code=response.status_code, latency_ms=_since(started), error=error)


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def attempt(db: Database, settings: Settings, delivery_id: UUID) -> Outcome | None:
    """Send the delivery once and record what happened; None when there was nothing to send
    (already delivered or failed, or gone with its webhook)."""
    async with db.transaction(SERVICE) as conn:
        row = await repo.delivery_for_attempt(conn, delivery_id)
    if row is None or row["status"] != "pending":
        return None
    outcome = (
        await post(row, settings)
        if row["is_active"]
        else Outcome(error="The webhook is disabled.", refused=True)
    )
    async with db.transaction(SERVICE) as conn:
        await _settle(conn, settings, row, outcome)
    return outcome


async def _settle(
    conn: Connection, settings: Settings, row: dict[str, Any], outcome: Outcome
) -> None:
    gone = outcome.response_code == 410
    retry_in = None
    if not (outcome.delivered or outcome.refused or gone):
        delay = BACKOFF.delay(row["attempts"])
        window_ends = row["created_at"] + timedelta(hours=settings.webhook_retry_hours)
        if datetime.now(UTC) + timedelta(seconds=delay) <= window_ends:
            retry_in = delay
    status = "delivered" if outcome.delivered else ("pending" if retry_in else "failed")
    recorded = await repo.record_attempt(
        conn,
        row["id"],
        row["organization_id"],
        status=status,
        response_code=outcome.response_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
        next_attempt_in_seconds=retry_in,
    )
    if status == "pending":
        # A redelivery asked for meanwhile already waits: it is the next attempt.
        if not await repo.has_waiting_job(conn, job_lock(row["id"])):
            await enqueue_attempt(
                conn, row["id"], scheduled_at=recorded["next_attempt_at"], retry=True
            )
        return
    if not row["is_active"]:
        return
    failures = await repo.count_outcome(conn, row["webhook_id"], failed=status == "failed")
    if gone:
        await _disable(conn, row, "its URL answered 410 Gone")
    elif status == "failed" and failures >= settings.webhook_disable_after_failures:
        await _disable(conn, row, f"{failures} deliveries in a row failed")


async def _disable(conn: Connection, row: dict[str, Any], reason: str) -> None:
    disabled = await repo.disable_webhook(conn, row["webhook_id"])
    if disabled is None:
        return
    await repo.notify_admins(
        conn,
        row["organization_id"],
        subject="A webhook was turned off",
        body=f"The webhook to {disabled['url']} was turned off: {reason}. "
        "Fix the endpoint, then turn it back on.",
        data={"webhook_id": str(row["webhook_id"]), "url": disabled["url"], "reason": reason},
    )
