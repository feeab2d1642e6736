"""All SQL of the waitlist. Offers are made by the database (migration 0005) in the
transaction that frees a place; this module reads what they did and asks for expiry."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row

_ENTRY_COLUMNS = (
    "w.id, w.organization_id, w.service_id, w.user_id, w.starts_at, w.ends_at, w.status,"
    " w.offer_expires_at, w.appointment_id, w.created_at, coalesce(o.timezone, 'UTC') as timezone,"
    " case when w.status = 'waiting'"
    "   then app.waitlist_ahead(w.service_id, w.starts_at, w.created_at, w.id) + 1 end as position"
)
_WITH_TIMEZONE = " left join public.organizations o on o.id = w.organization_id"


async def expire_offers(conn: Connection) -> None:
    await conn.execute("select app.expire_waitlist_offers()")


async def lock_service_places(conn: Connection, service_id: UUID) -> None:
    """Queue behind every booking and offer of the service, as the capacity trigger does."""
    await conn.execute("select app.lock_service_places(%(id)s)", {"id": service_id})


async def places_taken(conn: Connection, service_id: UUID, start: datetime, end: datetime) -> int:
    row = await fetch_row(
        conn,
        "select app.places_taken(%(id)s, %(start)s, %(end)s) as taken",
        {"id": service_id, "start": start, "end": end},
    )
    return int(row["taken"])


async def insert_entry(conn: Connection, service_id: UUID, starts_at: datetime) -> Row | None:
    """The new entry, or None when the caller already waits for this slot."""
    cursor = await conn.execute(
        # The database fills in the organization, the end and the line order.
        "with w as (insert into public.waitlist_entries (service_id, user_id, starts_at)"
        " values (%(service)s, auth.uid(), %(starts_at)s)"
        " on conflict (organization_id, service_id, starts_at, user_id)"
        "   where status in ('waiting', 'offered') do nothing"
        " returning *)"
        f" select {_ENTRY_COLUMNS} from w{_WITH_TIMEZONE}",
        {"service": service_id, "starts_at": starts_at},
    )
    return await cursor.fetchone()


async def get_entry(conn: Connection, entry_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        f"select {_ENTRY_COLUMNS} from public.waitlist_entries w{_WITH_TIMEZONE}"
        " where w.id = %(id)s",
        {"id": entry_id},
    )


async def list_own_entries(
    conn: Connection, after: tuple[datetime, UUID] | None, limit: int
) -> list[Row]:
    """The caller's own entries, newest first (staff also see their organization's through
    row-level security; this list is the caller's as a customer)."""
    return await fetch_all(
        conn,
        f"select {_ENTRY_COLUMNS} from public.waitlist_entries w{_WITH_TIMEZONE}"
        " where w.user_id = auth.uid()"
        " and (%(after_at)s::timestamptz is null"
        "   or (w.created_at, w.id) < (%(after_at)s, %(after_id)s::uuid))"
        " order by w.created_at desc, w.id desc limit %(limit)s",
        {
            "after_at": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit + 1,
        },
    )


async def delete_entry(conn: Connection, entry: Row) -> bool:
    cursor = await conn.execute(
        "delete from public.waitlist_entries where id = %(id)s and organization_id = %(org)s",
        {"id": entry["id"], "org": entry["organization_id"]},
    )
    return cursor.rowcount > 0


async def accept_offer(conn: Connection, entry_id: UUID) -> Row:
    """Book the offered place through the database: `outcome` is 'booked' (with the
    appointment), 'not_found', 'full' (the place went first to someone else),
    'accepted_before', or the status ('waiting', 'expired') of an entry without an offer."""
    return await fetch_row(
        conn,
        "select outcome, appointment_id from app.accept_waitlist_offer(%(id)s)",
        {"id": entry_id},
    )
