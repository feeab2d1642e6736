"""All SQL of webhooks. The management functions run as the caller, so RLS (admins only)
decides what they see; the delivery log is written by the worker (service_role) and, from a
request, only through the caller-checked functions of the database (`record_deliveries`,
`reopen_delivery`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row
from slotease.kit import crypto

_WEBHOOK_COLUMNS = (
    "id, organization_id, url, events, is_active, consecutive_failures, disabled_at,"
    " previous_secret_expires_at, created_at, updated_at"
)
_DELIVERY_COLUMNS = (
    "id, webhook_id, event, status, attempts, response_code, latency_ms, last_error,"
    " next_attempt_at, created_at, delivered_at"
)


def _page(after: Sequence[Any] | None, limit: int) -> dict[str, Any]:
    """Keyset parameters: the (created_at, id) cursor and one row more than the page."""
    return {
        "after_at": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit + 1,
    }


def _secret_context(webhook_id: UUID) -> str:
    return crypto.field_context(crypto.WEBHOOK_SECRET, webhook_id)


def _notes_context(payload: dict[str, Any]) -> str:
    # Only appointment events carry notes, under the appointment's id.
    return crypto.field_context(crypto.NOTES, payload.get("id"))


# ----- management (as the caller) ---------------------------------------------------------
async def insert_webhook(
    conn: Connection, organization_id: UUID, url: str, events: list[str], secret: str
) -> Row:
    """The id is chosen here: the secret is sealed to it before the row exists."""
    webhook_id = uuid4()
    return await fetch_row(
        conn,
        "insert into public.webhooks (id, organization_id, url, events, secret)"
        " values (%(id)s, %(org)s, %(url)s, %(events)s, %(secret)s)"
        f" returning {_WEBHOOK_COLUMNS}",
        {
            "id": webhook_id,
            "org": organization_id,
            "url": url,
            "events": events,
            "secret": crypto.encrypt(secret, context=_secret_context(webhook_id)),
        },
    )


async def list_webhooks(
    conn: Connection, organization_id: UUID, *, after: Sequence[Any] | None, limit: int
) -> list[Row]:
    """Oldest first; `limit + 1` rows."""
    return await fetch_all(
        conn,
        f"select {_WEBHOOK_COLUMNS} from public.webhooks where organization_id = %(org)s"
        " and (%(after_at)s::timestamptz is null"
        "      or (created_at, id) > (%(after_at)s::timestamptz, %(after_id)s::uuid))"
        " order by created_at, id limit %(limit)s",
        {"org": organization_id, **_page(after, limit)},
    )


async def get_webhook(conn: Connection, webhook_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        f"select {_WEBHOOK_COLUMNS} from public.webhooks where id = %(webhook_id)s",
        {"webhook_id": webhook_id},
    )


async def update_webhook(conn: Connection, webhook_id: UUID, columns: dict[str, Any]) -> Row | None:
    """`columns` among url, events, is_active. Turning a webhook back on forgets its failures."""
    return await fetch_one(
        conn,
        "update public.webhooks set url = coalesce(%(url)s, url),"
        " events = coalesce(%(events)s, events), is_active = coalesce(%(active)s, is_active),"
        " disabled_at = case when %(active)s then null"
        "   when %(active)s = false and is_active then now() else disabled_at end,"
        " consecutive_failures = case when %(active)s then 0 else consecutive_failures end"
        f" where id = %(id)s returning {_WEBHOOK_COLUMNS}",
        {
            "id": webhook_id,
            "url": columns.get("url"),
            "events": columns.get("events"),
            "active": columns.get("is_active"),
        },
    )


async def delete_webhook(conn: Connection, webhook_id: UUID) -> bool:
    row = await fetch_one(
        conn,
        "delete from public.webhooks where id = %(webhook_id)s returning id",
        {"webhook_id": webhook_id},
    )
    return row is not None


async def rotate_secret(
    conn: Connection, webhook_id: UUID, secret: str, overlap_hours: float
) -> Row | None:
    """None unless the caller administers the webhook. The API roles may write the secret but
    never read it back, so moving it to `previous_secret` is the database function's job."""
    return await fetch_one(
        conn,
        "select id, previous_secret_expires_at from app.rotate_webhook_secret("
        "%(id)s, %(secret)s, make_interval(secs => %(overlap)s * 3600))",
        {
            "id": webhook_id,
            "secret": crypto.encrypt(secret, context=_secret_context(webhook_id)),
            "overlap": overlap_hours,
        },
    )


async def list_deliveries(
    conn: Connection, webhook_id: UUID, *, after: Sequence[Any] | None, limit: int
) -> list[Row]:
    """Newest first; `limit + 1` rows."""
    return await fetch_all(
        conn,
        f"select {_DELIVERY_COLUMNS} from public.webhook_deliveries"
        " where webhook_id = %(webhook)s and (%(after_at)s::timestamptz is null"
        "      or (created_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))"
        " order by created_at desc, id desc limit %(limit)s",
        {"webhook": webhook_id, **_page(after, limit)},
    )


async def get_delivery(conn: Connection, webhook_id: UUID, delivery_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        f"select {_DELIVERY_COLUMNS}, organization_id from public.webhook_deliveries"
        " where id = %(delivery_id)s and webhook_id = %(webhook_id)s",
        {"delivery_id": delivery_id, "webhook_id": webhook_id},
    )


# ----- the delivery log ------------------------------------------------------------------
# Named so that bench/booking.py runs the very statement a booking sends. The gate spares
# every event no webhook listens to the recording and its caller check; the deliveries are
# visible to the jobs' check (app.enqueue_job) since the recording ran first.
RECORD_DELIVERIES_SQL = (
    "select case when app.webhook_subscribed(%(org)s, %(event)s) then ("
    " select count(*) from app.enqueue_jobs(("
    "   select coalesce(jsonb_agg(%(attempt)s::jsonb || jsonb_build_object("
    "     'args', jsonb_build_object('delivery_id', d.id),"
    "     'lock', %(lock_prefix)s::text || d.id::text,"
    "     'queueing_lock', %(lock_prefix)s::text || d.id::text)), '[]')"
    "   from app.record_webhook_deliveries(%(org)s, %(event)s, %(payload)s) as d (id))))"
    " end as enqueued"
)


async def record_deliveries(
    conn: Connection,
    organization_id: UUID,
    event: str,
    payload: dict[str, Any],
    *,
    attempt: dict[str, Any],
    lock_prefix: str,
) -> None:
    """One pending delivery per active webhook of the organization subscribed to `event`, and
    the job of its first attempt (`attempt`, an `app.enqueue_jobs` job whose args, lock and
    queueing lock are the delivery's: `lock_prefix` and its id). One statement that reads
    nothing back, so a booking sends it with its INSERT (see appointments.service.book). An
    appointment's notes stay sealed in the kept payload; the worker opens them to send."""
    await conn.execute(
        RECORD_DELIVERIES_SQL,
        {
            "org": organization_id,
            "event": event,
            "payload": Jsonb(crypto.seal_in(payload, "notes", context=_notes_context(payload))),
            "attempt": Jsonb(attempt),
            "lock_prefix": lock_prefix,
        },
    )


async def reopen_delivery(conn: Connection, delivery_id: UUID) -> None:
    """Pending again, in place of any attempt waiting for its turn (admins of its organization)."""
    await conn.execute(
        "select app.reopen_webhook_delivery(%(delivery_id)s)", {"delivery_id": delivery_id}
    )


async def has_waiting_job(conn: Connection, queueing_lock: str) -> bool:
    row = await fetch_one(
        conn,
        "select 1 from public.procrastinate_jobs where status = 'todo' and queueing_lock ="
        " %(queueing_lock)s",
        {"queueing_lock": queueing_lock},
    )
    return row is not None


async def delivery_for_attempt(conn: Connection, delivery_id: UUID) -> Row | None:
    """The delivery with what sending it needs: its webhook's URL and live secrets, opened (the
    worker is their one reader)."""
    row = await fetch_one(
        conn,
        "select d.id, d.organization_id, d.webhook_id, d.event, d.payload, d.status, d.attempts,"
        " d.created_at, w.url, w.is_active, w.secret,"
        " case when w.previous_secret_expires_at > now() then w.previous_secret end"
        "   as previous_secret"
        " from public.webhook_deliveries d join public.webhooks w"
        "   on w.id = d.webhook_id and w.organization_id = d.organization_id"
        " where d.id = %(delivery_id)s",
        {"delivery_id": delivery_id},
    )
    if row is None:
        return None
    context = _secret_context(row["webhook_id"])
    return {
        **row,
        "payload": crypto.open_in(row["payload"], "notes", context=_notes_context(row["payload"])),
        "secret": crypto.decrypt(row["secret"], context=context),
        "previous_secret": crypto.decrypt_optional(row["previous_secret"], context=context),
    }


async def record_attempt(
    conn: Connection,
    delivery_id: UUID,
    organization_id: UUID,
    *,
    status: str,
    response_code: int | None,
    latency_ms: int | None,
    error: str | None,
    next_attempt_in_seconds: float | None,
) -> Row:
    return await fetch_row(
        conn,
        "update public.webhook_deliveries set status = %(status)s, attempts = attempts + 1,"
        " response_code = %(code)s, latency_ms = %(latency)s, last_error = %(error)s,"
        " next_attempt_at = now() + make_interval(secs => %(delay)s),"
        " delivered_at = case when %(status)s = 'delivered' then now() end"
        " where id = %(id)s and organization_id = %(org)s returning next_attempt_at",
        {
            "id": delivery_id,
            "org": organization_id,
            "status": status,
            "code": response_code,
            "latency": latency_ms,
            "error": error,
            "delay": next_attempt_in_seconds,
        },
    )


async def count_outcome(conn: Connection, webhook_id: UUID, *, failed: bool) -> int:
    """Count a finished delivery: a failure extends the run of failures, a success ends it."""
    row = await fetch_row(
        conn,
        "update public.webhooks set consecutive_failures ="
        " case when %(failed)s then consecutive_failures + 1 else 0 end"
        " where id = %(id)s returning consecutive_failures",
        {"id": webhook_id, "failed": failed},
    )
    failures: int = row["consecutive_failures"]
    return failures


async def disable_webhook(conn: Connection, webhook_id: UUID) -> Row | None:
    """Nothing when it was already off: its admins are told once."""
    return await fetch_one(
        conn,
        "update public.webhooks set is_active = false, disabled_at = now()"
        " where id = %(webhook_id)s and is_active returning id, organization_id, url,"
        " consecutive_failures",
        {"webhook_id": webhook_id},
    )


async def notify_admins(
    conn: Connection, organization_id: UUID, subject: str, body: str, data: dict[str, Any]
) -> int:
    """An in-app notification to each admin of the organization; it needs no sending."""
    rows = await fetch_all(
        conn,
        "insert into public.notifications"
        " (organization_id, user_id, channel, template, subject, body, data, status, sent_at)"
        " select organization_id, user_id, 'in_app', 'webhook.disabled', %(subject)s, %(body)s,"
        " %(data)s, 'delivered', now() from public.organization_members"
        " where organization_id = %(org)s and role = 'admin' returning id",
        {"org": organization_id, "subject": subject, "body": body, "data": Jsonb(data)},
    )
    return len(rows)
