"""All SQL of notifications. Request-side functions run as the caller (RLS decides); the
worker-side ones run as service_role."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row
from slotease.kit import crypto

_NOTIFICATION_COLUMNS = "id, channel, subject, body, status, read_at, created_at"


# ----- preferences (as the user) --------------------------------------------------------
def _push_token_context(user_id: UUID) -> str:
    return crypto.field_context(crypto.PUSH_TOKEN, user_id)


def _opened(row: Row, user_id: UUID) -> Row:
    """The preferences with the push token in plaintext."""
    token = crypto.decrypt_optional(row["push_token"], context=_push_token_context(user_id))
    return {**row, "push_token": token}


async def get_preferences(conn: Connection, user_id: UUID) -> Row | None:
    row = await fetch_one(
        conn,
        "select email, sms, push, in_app, quiet_hours, fallback_order, push_token"
        " from public.notification_preferences where user_id = %(user_id)s",
        {"user_id": user_id},
    )
    return None if row is None else _opened(row, user_id)


async def put_preferences(conn: Connection, user_id: UUID, values: dict[str, Any]) -> Row:
    row = await fetch_row(
        conn,
        "insert into public.notification_preferences"
        " (user_id, email, sms, push, in_app, quiet_hours, fallback_order, push_token)"
        " values (%(user_id)s, %(email)s, %(sms)s, %(push)s, %(in_app)s, %(quiet_hours)s,"
        " %(fallback_order)s, %(push_token)s)"
        " on conflict (user_id) do update set email = excluded.email, sms = excluded.sms,"
        " push = excluded.push, in_app = excluded.in_app, quiet_hours = excluded.quiet_hours,"
        " fallback_order = excluded.fallback_order, push_token = excluded.push_token"
        " returning email, sms, push, in_app, quiet_hours, fallback_order, push_token",
        {
            **values,
            "user_id": user_id,
            "quiet_hours": None if values["quiet_hours"] is None else Jsonb(values["quiet_hours"]),
            "push_token": crypto.encrypt_optional(
                values["push_token"], context=_push_token_context(user_id)
            ),
        },
    )
    return _opened(row, user_id)


# ----- sending (as staff or admin) -----------------------------------------------------
async def organizations_dealing_with(conn: Connection, user_id: UUID) -> list[UUID]:
    """Organizations the caller works for that deal with `user_id` (see app.deals_with)."""
    cursor = await conn.execute(
        "select org from unnest(app.member_org_ids()) org"
        " where app.deals_with(org, %(user)s) order by org",
        {"user": user_id},
    )
    return [row["org"] for row in await cursor.fetchall()]


async def people_of(conn: Connection, organization_id: UUID, user_ids: list[UUID]) -> list[UUID]:
    """Which of `user_ids` the organization deals with."""
    cursor = await conn.execute(
        "select u from unnest(%(users)s::uuid[]) u where app.deals_with(%(org)s, u)",
        {"org": organization_id, "users": user_ids},
    )
    return [row["u"] for row in await cursor.fetchall()]


async def audience(
    conn: Connection, organization_id: UUID, day: date, service_id: UUID | None
) -> list[UUID]:
    """Customers with an active appointment on `day`, a local date of the organization."""
    cursor = await conn.execute(
        "select distinct a.customer_id from public.appointments a"
        " join public.organizations o on o.id = a.organization_id"
        " where a.organization_id = %(org)s and a.status in ('booked', 'checked_in')"
        " and a.customer_id is not null"
        " and (%(service)s::uuid is null or a.service_id = %(service)s)"
        " and a.starts_at >= (%(day)s::date)::timestamp at time zone o.timezone"
        " and a.starts_at < (%(day)s::date + 1)::timestamp at time zone o.timezone",
        {"org": organization_id, "day": day, "service": service_id},
    )
    return [row["customer_id"] for row in await cursor.fetchall()]


async def insert_notifications(conn: Connection, rows: list[Row]) -> None:
    """Ids are chosen by the caller: staff may insert a notification but not read it back.
    One statement for all the rows (a bulk send writes them by the hundred)."""
    columns = ("id", "organization_id", "user_id", "channel", "template", "subject", "body",
               "data", "batch_id")  # fmt: skip
    values = {column: [row[column] for row in rows] for column in columns}
    await conn.execute(
        "insert into public.notifications (id, organization_id, user_id, channel, template,"
        " subject, body, data, batch_id)"
        " select * from unnest(%(id)s::uuid[], %(organization_id)s::uuid[],"
        " %(user_id)s::uuid[], %(channel)s::text[], %(template)s::text[], %(subject)s::text[],"
        " %(body)s::text[], %(data)s::jsonb[], %(batch_id)s::uuid[])",
        {**values, "data": [Jsonb(data) for data in values["data"]]},
    )


async def in_app_to_deliver(conn: Connection, ids: list[UUID]) -> list[Row]:
    """What delivering the in-app rows among `ids` needs, for those this transaction inserted."""
    return await fetch_all(conn, "select * from app.in_app_to_deliver(%(ids)s)", {"ids": ids})


async def record_in_app(
    conn: Connection,
    notification_id: UUID,
    *,
    status: str,
    subject: str | None,
    body: str | None,
    error: str | None,
) -> None:
    await conn.execute(
        "select app.record_in_app(%(notification_id)s, %(status)s, %(subject)s, %(body)s,"
        " %(error)s)",
        {
            "notification_id": notification_id,
            "status": status,
            "subject": subject,
            "body": body,
            "error": error,
        },
    )


# ----- the recipient's list ------------------------------------------------------------
async def list_for_user(
    conn: Connection,
    user_id: UUID,
    *,
    unread: bool,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Row]:
    cursor = await conn.execute(
        f"select {_NOTIFICATION_COLUMNS} from public.notifications"
        " where user_id = %(user)s"
        " and (not %(unread)s or (read_at is null and channel = 'in_app'))"
        " and (%(at)s::timestamptz is null or (created_at, id) < (%(at)s, %(id)s::uuid))"
        " order by created_at desc, id desc limit %(limit)s",
        {
            "user": user_id,
            "unread": unread,
            "at": after[0] if after else None,
            "id": after[1] if after else None,
            "limit": limit,
        },
    )
    return await cursor.fetchall()


async def mark_read(conn: Connection, notification_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        "update public.notifications set read_at = coalesce(read_at, now())"
        " where id = %(notification_id)s returning id, read_at",
        {"notification_id": notification_id},
    )


async def is_visible(conn: Connection, notification_id: UUID) -> bool:
    cursor = await conn.execute(
        "select 1 from public.notifications where id = %(notification_id)s",
        {"notification_id": notification_id},
    )
    return await cursor.fetchone() is not None


# ----- the worker (service_role) ------------------------------------------------------
async def for_delivery(conn: Connection, ids: list[UUID]) -> list[Row]:
    """The notifications, in the order of `ids`, with everything delivering them needs: the
    recipient's addresses, locale, preferences and latest consent decisions, and the
    organization's templates."""
    rows = await fetch_all(
        conn,
        "select n.id, n.created_at, n.organization_id, n.user_id, n.channel, n.template,"
        " n.subject, n.body, n.data, n.status, n.attempts, n.batch_id,"
        # Email goes only to a verified address: to anyone else it has no address to go to.
        " case when u.email_confirmed_at is not null then u.email end as email,"
        " p.phone, p.full_name, coalesce(p.locale, 'en') as locale,"
        " coalesce(f.email, true) as pref_email, coalesce(f.sms, true) as pref_sms,"
        " coalesce(f.push, true) as pref_push, coalesce(f.in_app, true) as pref_in_app,"
        " f.quiet_hours, coalesce(f.fallback_order, '{push,sms,email}') as fallback_order,"
        " f.push_token, o.name as organization_name,"
        " coalesce(o.settings -> 'templates', '{}') as templates,"
        " (select jsonb_object_agg(c.purpose, c.granted) from ("
        "   select distinct on (e.purpose) e.purpose, e.granted from public.consent_events e"
        "   where e.user_id = n.user_id order by e.purpose, e.at desc, e.id desc) c) as consents"
        " from unnest(%(ids)s::uuid[]) with ordinality as i(id, position)"
        " join public.notifications n on n.id = i.id"
        " join auth.users u on u.id = n.user_id"
        " left join public.user_profiles p on p.user_id = n.user_id"
        " left join public.notification_preferences f on f.user_id = n.user_id"
        " left join public.organizations o on o.id = n.organization_id"
        " order by i.position",
        {"ids": ids},
    )
    # The worker is the one reader of the addresses in plaintext: it hands them to providers.
    return [
        {
            **_opened(row, row["user_id"]),
            "phone": crypto.decrypt_optional(
                row["phone"], context=crypto.field_context(crypto.PHONE, row["user_id"])
            ),
        }
        for row in rows
    ]


async def record(conn: Connection, outcomes: list[Row]) -> None:
    """Record delivery outcomes in one statement. Each outcome names its notification (`id`),
    its `status`, `attempted` (whether a provider was called) and, None to keep what the row
    has, `subject`, `body`, `provider`, `provider_message_id`; `last_error` replaces the
    row's."""
    if not outcomes:
        return
    columns = ("id", "status", "subject", "body", "provider", "provider_message_id",
               "last_error", "attempted")  # fmt: skip
    await conn.execute(
        "update public.notifications n set status = r.status,"
        " subject = coalesce(r.subject, n.subject), body = coalesce(r.body, n.body),"
        " provider = coalesce(r.provider, n.provider),"
        " provider_message_id = coalesce(r.provider_message_id, n.provider_message_id),"
        " last_error = r.last_error, attempts = n.attempts + r.attempted::int,"
        " sent_at = case when r.status in ('sent', 'delivered') then now() else n.sent_at end"
        " from unnest(%(id)s::uuid[], %(status)s::text[], %(subject)s::text[],"
        " %(body)s::text[], %(provider)s::text[], %(provider_message_id)s::text[],"
        " %(last_error)s::text[], %(attempted)s::boolean[])"
        " as r(id, status, subject, body, provider, provider_message_id, last_error, attempted)"
        " where n.id = r.id",
        {column: [outcome[column] for outcome in outcomes] for column in columns},
    )


async def ids_of_batch(conn: Connection, batch_id: UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select id, channel, status from public.notifications where batch_id = %(batch_id)s"
        " order by created_at, id",
        {"batch_id": batch_id},
    )


async def recipient(conn: Connection, user_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        "select u.id, coalesce(f.in_app, true) as in_app, coalesce(f.email, true) as email,"
        " coalesce(f.sms, true) as sms, coalesce(f.push, true) as push,"
        " coalesce(f.fallback_order, '{push,sms,email}') as fallback_order,"
        " coalesce(p.timezone, 'UTC') as timezone"
        " from auth.users u left join public.notification_preferences f on f.user_id = u.id"
        " left join public.user_profiles p on p.user_id = u.id where u.id = %(user_id)s",
        {"user_id": user_id},
    )


async def appointment_facts(conn: Connection, appointment_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        "select a.id, a.organization_id, a.customer_id, a.starts_at, a.ends_at, a.status,"
        " s.name as service, o.name as organization, o.timezone"
        " from public.appointments a join public.services s on s.id = a.service_id"
        " join public.organizations o on o.id = a.organization_id where a.id = %(appointment_id)s",
        {"appointment_id": appointment_id},
    )


async def organization_facts(
    conn: Connection, organization_id: UUID, service_id: UUID | None
) -> Row | None:
    return await fetch_one(
        conn,
        "select o.name as organization, o.timezone,"
        " (select s.name from public.services s where s.id = %(service)s) as service"
        " from public.organizations o where o.id = %(org)s",
        {"org": organization_id, "service": service_id},
    )


async def ticket_facts(conn: Connection, ticket_id: UUID) -> Row | None:
    """The ticket with its number, counter, service and place in line (None unless waiting)."""
    return await fetch_one(
        conn,
        "select t.id, t.organization_id, t.user_id, t.status, t.counter, t.number, q.prefix,"
        " q.service_id, (select p.position from app.ticket_positions(array[t.id]) p) as position"
        " from public.tickets t join public.queues q on q.id = t.queue_id where t.id ="
        " %(ticket_id)s",
        {"ticket_id": ticket_id},
    )


async def ticket_at_position(conn: Connection, queue_id: UUID, position: int) -> UUID | None:
    """The waiting ticket at `position` of the queue's line if someone holds it, whoever the
    caller is."""
    row = await fetch_row(
        conn,
        "select app.ticket_at_position(%(queue)s, %(position)s) as id",
        {"queue": queue_id, "position": position},
    )
    ticket_id: UUID | None = row["id"]
    return ticket_id


async def waitlist_entry_facts(conn: Connection, entry_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        "select w.id, w.organization_id, w.user_id, w.service_id, w.status, w.starts_at,"
        " w.offer_expires_at from public.waitlist_entries w where w.id = %(entry_id)s",
        {"entry_id": entry_id},
    )


async def drop_reminders(conn: Connection, appointment_id: UUID) -> int:
    """Cancel the appointment's reminder jobs not yet started: a reschedule enqueues new ones."""
    row = await fetch_row(
        conn, "select app.drop_reminders(%(id)s) as dropped", {"id": appointment_id}
    )
    dropped: int = row["dropped"]
    return dropped
