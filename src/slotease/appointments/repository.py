"""All SQL of availability and appointments. Row-level security decides which rows exist for
the caller; the database's triggers decide capacity and status changes, and their errors are
translated here into the problems the API answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from slotease.appointments.schemas import AppointmentFilters
from slotease.db.catalogue import SqlState, refusals_of
from slotease.db.database import Connection, Database
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row
from slotease.kit import crypto
from slotease.kit.dberrors import (
    FOREIGN_KEY_VIOLATION,
    INSUFFICIENT_PRIVILEGE,
    UNIQUE_VIOLATION,
    Refusal,
    RuleKey,
    refusals,
)
from slotease.kit.problems import Conflict, Forbidden, NotFound, Unprocessable

# What the triggers' and constraints' refusals mean to a caller; anything else is a bug.
_REFUSALS: dict[RuleKey, Refusal] = {
    **refusals_of(SqlState.SLOT_FULL, SqlState.INVALID_CHANGE),
    INSUFFICIENT_PRIVILEGE: lambda _: Forbidden("You may not make this change to the appointment."),
    FOREIGN_KEY_VIOLATION: lambda _: Unprocessable("The customer does not exist."),
    UNIQUE_VIOLATION: lambda _: Conflict("This has already been recorded."),
}
# A new appointment passes the insert policy only for oneself or for someone the organization
# deals with (app.deals_with): anyone else is not a customer the caller can see.
_INSERT_REFUSALS: dict[RuleKey, Refusal] = {
    **_REFUSALS,
    INSUFFICIENT_PRIVILEGE: lambda _: NotFound("No such customer."),
}

_APPOINTMENT_COLUMNS = (
    "a.id, a.organization_id, a.service_id, a.customer_id, a.starts_at, a.ends_at, a.status,"
    " a.notes"
)
# The organization may be hidden from the caller (inactive); the row stays readable in UTC.
_WITH_TIMEZONE = " left join public.organizations o on o.id = a.organization_id"


# The statements of the booking and availability paths are named so that the benchmarks in
# bench/ run the very same SQL through pgbench.
SCHEDULE_SQL = (
    "select s.id, s.organization_id, s.is_active, s.duration_minutes, s.capacity,"
    " s.buffer_minutes, s.min_notice_minutes, s.max_advance_days, s.slot_interval_minutes,"
    " o.timezone,"
    " coalesce(array_agg(h.weekday order by h.weekday, h.start_time)"
    "   filter (where h.id is not null), '{}') as weekdays,"
    " coalesce(array_agg(h.start_time order by h.weekday, h.start_time)"
    "   filter (where h.id is not null), '{}') as starts,"
    " coalesce(array_agg(h.end_time order by h.weekday, h.start_time)"
    "   filter (where h.id is not null), '{}') as ends"
    " from public.services s"
    " join public.organizations o on o.id = s.organization_id"
    " left join public.service_working_hours h on h.service_id = s.id"
    " where s.id = %(id)s"
    " group by s.id, s.organization_id, o.timezone"
)
# The service id and the days are bound as literals: a query with parameters could hold only
# one statement.
_VERSION_QUERY = sql.SQL(
    "select set_config('role', 'anon', true);"
    " select app.availability_version({id}) as version,"
    " app.availability_days({id}, {first}, {last}) as days"
)
CLOSURES_SQL = (
    "select starts_at, ends_at from public.service_closures"
    " where service_id = %(id)s and ends_at > %(start)s and starts_at < %(end)s"
)
BUSY_SQL = "select starts_at, ends_at, places from app.busy_intervals(%(id)s, %(start)s, %(end)s)"


def _micros(column: str) -> str:
    return f"(extract(epoch from {column}) * 1000000)::bigint"


# A cache miss in one statement: the schedule, its closures and the places in use around the
# window, the places as aligned arrays of microseconds since the epoch, so that the driver
# parses three arrays instead of a timestamp pair per row. The aggregates of one query take
# its rows in one order, so the arrays stay aligned without sorting (the engine sorts the
# places itself). No row: no such service visible.
AVAILABILITY_SQL = (
    f"with s as ({SCHEDULE_SQL}), c as ({CLOSURES_SQL}), b as ({BUSY_SQL})"
    " select s.*, closures.*, places.* from s,"
    " (select coalesce(array_agg(c.starts_at), '{}') as closure_starts,"
    "   coalesce(array_agg(c.ends_at), '{}') as closure_ends from c) closures,"
    f" (select coalesce(array_agg({_micros('b.starts_at')}), '{{}}') as busy_starts,"
    f"   coalesce(array_agg({_micros('b.ends_at')}), '{{}}') as busy_ends,"
    "   coalesce(array_agg(b.places), '{}') as busy_places from b) places"
)
# The booking's one write: nothing is read back (the caller knows the row it writes), so it can
# travel in one pipeline with the work it owes (see `round_trip`).
INSERT_SQL = (
    "insert into public.appointments"
    " (id, organization_id, service_id, customer_id, starts_at, ends_at, notes, booked_by)"
    " values (%(id)s, %(organization_id)s, %(service_id)s, %(customer_id)s, %(starts_at)s,"
    " %(ends_at)s, %(notes)s, auth.uid())"
)


@dataclass(frozen=True)
class AvailabilityVersions:
    """The service's version (hours, closures, the service, its organization) and each asked
    day's (the appointments that can touch its slots)."""

    service: int
    days: list[int]


async def availability_versions(
    db: Database, service_id: UUID, first_day: date, last_day: date
) -> AvailabilityVersions:
    """The versions the database bumps with every change of what the service offers. Read on
    the cached path, before any request transaction: the two statements of one
    simple-protocol query share an implicit transaction, so the role set by the first holds
    for the second, in one round trip without BEGIN and COMMIT. The versions are public, so
    the role is `anon` whoever asks."""
    query = _VERSION_QUERY.format(
        id=sql.Literal(service_id), first=sql.Literal(first_day), last=sql.Literal(last_day)
    )
    async with db.pool.connection() as conn:
        cursor = await conn.execute(query)
        # The versions are the answer of the second statement, past the fetch helpers' reach.
        cursor.nextset()
        row = await cursor.fetchone()
    assert row is not None
    return AvailabilityVersions(row["version"], row["days"])


async def schedule(conn: Connection, service_id: UUID) -> Row | None:
    """The service, its organization's timezone and its weekly hours, in one query."""
    return await fetch_one(conn, SCHEDULE_SQL, {"id": service_id})


async def closures(conn: Connection, service_id: UUID, start: datetime, end: datetime) -> list[Row]:
    return await fetch_all(conn, CLOSURES_SQL, {"id": service_id, "start": start, "end": end})


async def availability_inputs(
    conn: Connection, service_id: UUID, start: datetime, end: datetime
) -> Row | None:
    """What a service offers between two instants and what is taken, in one round trip."""
    return await fetch_one(conn, AVAILABILITY_SQL, {"id": service_id, "start": start, "end": end})


def seal_notes(notes: str | None, appointment_id: UUID) -> bytes | None:
    return crypto.encrypt_optional(
        notes, context=crypto.field_context(crypto.NOTES, appointment_id)
    )


def _opened(row: Row) -> Row:
    """The row with its notes in plaintext."""
    context = crypto.field_context(crypto.NOTES, row["id"])
    return {**row, "notes": crypto.decrypt_optional(row["notes"], context=context)}


@asynccontextmanager
async def round_trip(conn: Connection) -> AsyncIterator[None]:
    """The statements of the block go to the database together when it ends (psycopg's
    pipeline mode), in one round trip, and a refusal of the insert is answered then. For a
    booking: its INSERT takes the service's capacity lock, held until the COMMIT, so what it
    owes (jobs, webhook deliveries) must not cost round trips of its own in between."""
    with refusals(_INSERT_REFUSALS):
        async with conn.pipeline():
            yield


async def insert_appointment(conn: Connection, values: Row) -> None:
    """Sent inside `round_trip`, which answers its refusals. `values["id"]` is chosen by the
    caller before the row exists: the notes are sealed to it, and what the booking owes names
    it. Nothing is read back."""
    sealed = {**values, "notes": seal_notes(values["notes"], values["id"])}
    await conn.execute(INSERT_SQL, sealed)


async def get_appointment(conn: Connection, appointment_id: UUID) -> Row | None:
    cursor = await conn.execute(
        f"select {_APPOINTMENT_COLUMNS}, o.timezone from public.appointments a{_WITH_TIMEZONE}"
        " where a.id = %(id)s",
        {"id": appointment_id},
    )
    row = await cursor.fetchone()
    return None if row is None else _opened(row)


async def update_appointment(conn: Connection, appointment_id: UUID, changes: Row) -> Row | None:
    """One UPDATE, so a move takes the new place and frees the old one atomically: the capacity
    trigger counts everyone but this row."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in changes
    )
    query = sql.SQL(
        "with a as (update public.appointments set {} where id = %(id)s returning *)"
        " select {}, o.timezone from a{}"
    ).format(assignments, sql.SQL(_APPOINTMENT_COLUMNS), sql.SQL(_WITH_TIMEZONE))
    if "notes" in changes:
        changes = {**changes, "notes": seal_notes(changes["notes"], appointment_id)}
    with refusals(_REFUSALS):
        cursor = await conn.execute(query, {**changes, "id": appointment_id})
        row = await cursor.fetchone()
    return None if row is None else _opened(row)


async def list_appointments(
    conn: Connection,
    filters: AppointmentFilters,
    *,
    customer_id: UUID | None,
    after: tuple[datetime, UUID] | None,
) -> list[Row]:
    """Dates are local to each appointment's organization; the UTC bounds around them (a day
    either side covers every offset) keep the scan on the index."""
    rows = await fetch_all(
        conn,
        f"select {_APPOINTMENT_COLUMNS}, o.timezone from public.appointments a{_WITH_TIMEZONE}"
        " where (%(customer)s::uuid is null or a.customer_id = %(customer)s)"
        " and (%(org)s::uuid is null or a.organization_id = %(org)s)"
        " and (%(service)s::uuid is null or a.service_id = %(service)s)"
        " and (%(status)s::text is null or a.status = %(status)s)"
        " and (%(from)s::date is null or (a.starts_at >= %(from)s::date - 1"
        "   and (a.starts_at at time zone coalesce(o.timezone, 'UTC'))::date >= %(from)s))"
        " and (%(to)s::date is null or (a.starts_at < %(to)s::date + 2"
        "   and (a.starts_at at time zone coalesce(o.timezone, 'UTC'))::date <= %(to)s))"
        " and (%(after_start)s::timestamptz is null"
        "   or (a.starts_at, a.id) > (%(after_start)s, %(after_id)s::uuid))"
        " order by a.starts_at, a.id"
        " limit %(limit)s",
        {
            "customer": customer_id,
            "org": filters.organization_id,
            "service": filters.service_id,
            "status": filters.status,
            "from": filters.from_day,
            "to": filters.to_day,
            "after_start": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": filters.limit + 1,
        },
    )
    return [_opened(row) for row in rows]


async def claim_idempotency_key(
    conn: Connection, key: str, method: str, path: str, request_hash: str
) -> bool:
    """Take the key for this request; False when a live one exists. A concurrent request with
    the same key waits here on the unique index until the first one commits or rolls back."""
    cursor = await conn.execute(
        "insert into public.idempotency_keys"
        " (principal, idempotency_key, request_method, request_path, request_hash)"
        " values ((select app.principal_id()), %(key)s, %(method)s, %(path)s, %(hash)s)"
        " on conflict (principal, idempotency_key) do update set"
        "   request_method = excluded.request_method, request_path = excluded.request_path,"
        "   request_hash = excluded.request_hash, response_status = null, response_body = null,"
        "   created_at = excluded.created_at, expires_at = excluded.expires_at"
        "   where public.idempotency_keys.expires_at <= now()"
        " returning 1",
        {"key": key, "method": method, "path": path, "hash": request_hash},
    )
    return await cursor.fetchone() is not None


async def idempotency_record(conn: Connection, key: str) -> Row | None:
    cursor = await conn.execute(
        "select request_method, request_path, request_hash, response_status, response_body"
        " from public.idempotency_keys"
        " where principal = (select app.principal_id()) and idempotency_key = %(key)s",
        {"key": key},
    )
    row = await cursor.fetchone()
    if row is None or row["response_body"] is None:
        return row
    body = row["response_body"]
    context = crypto.field_context(crypto.NOTES, body["id"])
    return {**row, "response_body": crypto.open_in(body, "notes", context=context)}


async def save_idempotent_response(
    conn: Connection, key: str, organization_id: UUID, status: int, body: Row
) -> None:
    """The answer is kept for replays; its notes, a copy of the appointment's, stay sealed."""
    body = crypto.seal_in(body, "notes", context=crypto.field_context(crypto.NOTES, body["id"]))
    await conn.execute(
        "update public.idempotency_keys"
        " set response_status = %(status)s, response_body = %(body)s, organization_id = %(org)s"
        " where principal = (select app.principal_id()) and idempotency_key = %(key)s",
        {"key": key, "status": status, "body": Jsonb(body), "org": organization_id},
    )


async def insert_feedback(
    conn: Connection, appointment: Row, rating: int, comment: str | None
) -> Row:
    context = crypto.field_context(crypto.COMMENT, appointment["id"])
    with refusals(_REFUSALS):
        row = await fetch_row(
            conn,
            "insert into public.feedback (organization_id, appointment_id, appointment_starts_at,"
            " service_id, customer_id, rating, comment)"
            " values (%(org)s, %(id)s, %(starts_at)s, %(service)s, auth.uid(), %(rating)s,"
            " %(comment)s)"
            " returning id, appointment_id, service_id, rating, comment, created_at",
            {
                "org": appointment["organization_id"],
                "id": appointment["id"],
                "starts_at": appointment["starts_at"],
                "service": appointment["service_id"],
                "rating": rating,
                "comment": crypto.encrypt_optional(comment, context=context),
            },
        )
    return {**row, "comment": comment}


async def service_is_visible(conn: Connection, service_id: UUID) -> bool:
    cursor = await conn.execute(
        "select 1 from public.services where id = %(id)s", {"id": service_id}
    )
    return await cursor.fetchone() is not None


async def rating_stats(conn: Connection, service_id: UUID) -> Row:
    return await fetch_row(
        conn,
        "select count, average, distribution from app.service_rating_stats(%(id)s)",
        {"id": service_id},
    )


_CALENDAR_ROWS = (
    "select a.id, a.starts_at, a.ends_at, a.status, a.revision, a.updated_at,"
    " s.name as service_name, o.name as organization_name, o.address,"
    " coalesce(o.timezone, 'UTC') as timezone"
    " from public.appointments a"
    " left join public.services s on s.id = a.service_id"
    " left join public.organizations o on o.id = a.organization_id"
)


async def calendar_row(conn: Connection, appointment_id: UUID) -> Row | None:
    return await fetch_one(conn, _CALENDAR_ROWS + " where a.id = %(id)s", {"id": appointment_id})


async def calendar_feed_rows(conn: Connection, since: datetime, limit: int) -> list[Row]:
    """The caller's own appointments (not those they see as staff) starting after `since`."""
    return await fetch_all(
        conn,
        _CALENDAR_ROWS + " where a.customer_id = auth.uid() and a.starts_at >= %(since)s"
        " order by a.starts_at, a.id limit %(limit)s",
        {"since": since, "limit": limit},
    )


async def save_calendar_token(conn: Connection, token_hash: str) -> None:
    """One live token per user: a new one replaces the old."""
    await conn.execute(
        "insert into public.calendar_feed_tokens (user_id, token_hash)"
        " values (auth.uid(), %(hash)s)"
        " on conflict (user_id) do update set token_hash = excluded.token_hash,"
        " created_at = now()",
        {"hash": token_hash},
    )


async def delete_calendar_token(conn: Connection) -> None:
    await conn.execute("delete from public.calendar_feed_tokens where user_id = auth.uid()")


async def calendar_feed_owner(conn: Connection, token_hash: str) -> UUID | None:
    cursor = await conn.execute(
        "select app.calendar_feed_owner(%(hash)s) as user_id", {"hash": token_hash}
    )
    row = await cursor.fetchone()
    return None if row is None else row["user_id"]


async def delete_expired_idempotency_keys(conn: Connection) -> int:
    cursor = await conn.execute("delete from public.idempotency_keys where expires_at <= now()")
    return cursor.rowcount


async def take_offers_made(conn: Connection) -> list[Row]:
    """The waitlist offers the database made so far in this transaction (a place this
    transaction freed goes to the first waiter of its slot), each reported once."""
    cursor = await conn.execute(
        "select current_setting('slotease.waitlist_offers', true) as offers,"
        " set_config('slotease.waitlist_offers', '', true)"
    )
    row = await cursor.fetchone()
    offers: list[Row] = json.loads(row["offers"]) if row and row["offers"] else []
    return offers
