"""All SQL of the personal-data routes. A request reads a person's records as that person
(row-level security decides), the operator's command as service_role; every query names the
person, so both read the same rows. The records the person's role cannot read (sessions,
their audit trail, analytics events) come from app.personal_records_of (migration 0018).
Personal fields are read here and nowhere else, so that decrypting them stays in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row
from slotease.kit import crypto


# ----- erasure --------------------------------------------------------------------------
async def close_own_account(conn: Connection) -> None:
    """Every session of the caller ends and their password stops working, at once."""
    await conn.execute("select app.close_my_account()")


async def user_by_email(conn: Connection, email: str) -> Row | None:
    """The account of an address (service_role only: the operator's commands)."""
    return await fetch_one(
        conn,
        "select id, email from auth.users where lower(email) = lower(%(email)s)",
        {"email": email},
    )


async def organizations_only_they_administer(conn: Connection, user_id: UUID) -> list[UUID]:
    rows = await fetch_all(
        conn,
        "select m.organization_id from public.organization_members m"
        " where m.user_id = %(user)s and m.role = 'admin' and not exists ("
        "  select 1 from public.organization_members o where o.organization_id = m.organization_id"
        "  and o.role = 'admin' and o.user_id <> %(user)s)"
        " order by 1",
        {"user": user_id},
    )
    return [row["organization_id"] for row in rows]


async def upcoming_appointments(conn: Connection, user_id: UUID) -> list[UUID]:
    rows = await fetch_all(
        conn,
        "select id from public.appointments where customer_id = %(user)s and status = 'booked'"
        " and starts_at >= now() order by starts_at, id",
        {"user": user_id},
    )
    return [row["id"] for row in rows]


async def active_tickets(conn: Connection, user_id: UUID) -> list[UUID]:
    """Tickets still waiting or called: those a holder may give up."""
    rows = await fetch_all(
        conn,
        "select id from public.tickets where user_id = %(user)s"
        " and status in ('waiting', 'called') order by created_at, id",
        {"user": user_id},
    )
    return [row["id"] for row in rows]


async def live_waitlist_entries(conn: Connection, user_id: UUID) -> list[UUID]:
    rows = await fetch_all(
        conn,
        "select id from public.waitlist_entries where user_id = %(user)s"
        " and status in ('waiting', 'offered') order by created_at, id",
        {"user": user_id},
    )
    return [row["id"] for row in rows]


async def erase_user(conn: Connection, user_id: UUID) -> dict[str, int] | None:
    """What the erasure changed, by kind; None when there is no such account."""
    row = await fetch_row(conn, "select app.erase_user(%(user)s) as counts", {"user": user_id})
    counts: dict[str, int] | None = row["counts"]
    return counts


# ----- export ---------------------------------------------------------------------------
def _opened(row: Row, key: str, field: str, row_id: object) -> Row:
    """`row` with its sealed `key` in plaintext (kit.crypto `field`, sealed to `row_id`)."""
    context = crypto.field_context(field, row_id)
    return {**row, key: crypto.decrypt_optional(row[key], context=context)}


async def profile(conn: Connection, user_id: UUID) -> Row | None:
    row = await fetch_one(
        conn,
        "select full_name, phone, timezone, locale, created_at, updated_at"
        " from public.user_profiles where user_id = %(user)s",
        {"user": user_id},
    )
    return None if row is None else _opened(row, "phone", crypto.PHONE, user_id)


async def memberships(conn: Connection, user_id: UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select organization_id, role, created_at from public.organization_members"
        " where user_id = %(user)s order by created_at, organization_id",
        {"user": user_id},
    )


async def appointments(conn: Connection, user_id: UUID) -> list[Row]:
    rows = await fetch_all(
        conn,
        "select id, organization_id, service_id, starts_at, ends_at, status, notes, booked_by,"
        " cancelled_at, created_at, updated_at from public.appointments"
        " where customer_id = %(user)s order by starts_at, id",
        {"user": user_id},
    )
    return [_opened(row, "notes", crypto.NOTES, row["id"]) for row in rows]


async def tickets(conn: Connection, user_id: UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select id, organization_id, queue_id, appointment_id, service_date, number, priority,"
        " status, counter, called_at, serving_at, finished_at, created_at from public.tickets"
        " where user_id = %(user)s order by created_at, id",
        {"user": user_id},
    )


async def waitlist_entries(conn: Connection, user_id: UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select id, organization_id, service_id, starts_at, ends_at, status, offered_at,"
        " offer_expires_at, appointment_id, created_at from public.waitlist_entries"
        " where user_id = %(user)s order by created_at, id",
        {"user": user_id},
    )


async def notifications(conn: Connection, user_id: UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select id, organization_id, channel, template, subject, body, status, read_at, sent_at,"
        " created_at from public.notifications where user_id = %(user)s"
        " order by created_at, id",
        {"user": user_id},
    )


async def feedback(conn: Connection, user_id: UUID) -> list[Row]:
    rows = await fetch_all(
        conn,
        "select id, organization_id, appointment_id, service_id, rating, comment, created_at"
        " from public.feedback where customer_id = %(user)s order by created_at, id",
        {"user": user_id},
    )
    return [_opened(row, "comment", crypto.COMMENT, row["appointment_id"]) for row in rows]


async def notification_preferences(conn: Connection, user_id: UUID) -> Row | None:
    row = await fetch_one(
        conn,
        "select email, sms, push, in_app, quiet_hours, fallback_order, push_token, updated_at"
        " from public.notification_preferences where user_id = %(user)s",
        {"user": user_id},
    )
    return None if row is None else _opened(row, "push_token", crypto.PUSH_TOKEN, user_id)


async def invitations(conn: Connection, email: str) -> list[Row]:
    return await fetch_all(
        conn,
        "select id, organization_id, email, role, status, expires_at, accepted_at, created_at"
        " from public.invitations where lower(email) = lower(%(email)s)"
        " order by created_at, id",
        {"email": email},
    )


async def calendar_feed(conn: Connection, user_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        "select created_at from public.calendar_feed_tokens where user_id = %(user)s",
        {"user": user_id},
    )


async def records_their_role_cannot_read(conn: Connection, user_id: UUID) -> Row:
    """`account`, `sessions`, `audit_entries` and `analytics_events` of the person."""
    row = await fetch_row(
        conn, "select app.personal_records_of(%(user)s) as records", {"user": user_id}
    )
    records: Row = row["records"]
    return records


# ----- consents -------------------------------------------------------------------------
async def consent_history(conn: Connection, user_id: UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select purpose, granted, source, at from public.consent_events"
        " where user_id = %(user)s order by at, id",
        {"user": user_id},
    )


async def latest_consents(conn: Connection, user_id: UUID) -> list[Row]:
    """The latest decision of each purpose the person decided."""
    return await fetch_all(
        conn,
        "select distinct on (purpose) purpose, granted, source, at from public.consent_events"
        " where user_id = %(user)s order by purpose, at desc, id desc",
        {"user": user_id},
    )


async def record_consents(
    conn: Connection, user_id: UUID, decisions: dict[str, bool], source: str
) -> None:
    """One event per decision that changes the current one; repeating a decision adds none."""
    await conn.execute(
        "insert into public.consent_events (user_id, purpose, granted, source)"
        " select %(user)s, d.key, d.value::boolean, %(source)s"
        " from jsonb_each_text(%(decisions)s) d"
        " where (select c.granted from public.consent_events c"
        "        where c.user_id = %(user)s and c.purpose = d.key"
        "        order by c.at desc, c.id desc limit 1) is distinct from d.value::boolean",
        {"user": user_id, "decisions": Jsonb(decisions), "source": source},
    )


# ----- the audit trail --------------------------------------------------------------------
async def audit_entries(
    conn: Connection,
    organization_id: UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    table: str | None,
    actor_id: UUID | None,
    after: list[Any] | None,
    limit: int,
) -> list[Row]:
    """Newest first, `limit + 1` rows. Secrets and hashes are redacted again on the way out
    (the trigger already did, for rows written since migration 0012)."""
    return await fetch_all(
        conn,
        "select l.id, l.at, l.actor_id, l.table_name as table, l.operation, l.row_id,"
        " case l.operation"
        "   when 'INSERT' then app.redact_secrets(l.new_row)"
        "   when 'DELETE' then app.redact_secrets(l.old_row)"
        "   else coalesce((select jsonb_object_agg(n.key, jsonb_build_object("
        "          'old', o.value, 'new', n.value))"
        "        from jsonb_each(app.redact_secrets(l.new_row)) n"
        "        left join jsonb_each(app.redact_secrets(l.old_row)) o on o.key = n.key"
        "        where o.value is distinct from n.value), '{}')"
        " end as changes"
        " from public.audit_log l"
        " where l.organization_id = %(org)s"
        "   and (%(since)s::timestamptz is null or l.at >= %(since)s)"
        "   and (%(until)s::timestamptz is null or l.at <= %(until)s)"
        "   and (%(table)s::text is null or l.table_name = %(table)s)"
        "   and (%(actor)s::uuid is null or l.actor_id = %(actor)s)"
        "   and (%(after_at)s::timestamptz is null"
        "        or (l.at, l.id) < (%(after_at)s::timestamptz, %(after_id)s::bigint))"
        " order by l.at desc, l.id desc limit %(limit)s",
        {
            "org": organization_id,
            "since": since,
            "until": until,
            "table": table,
            "actor": actor_id,
            "after_at": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit + 1,
        },
    )
