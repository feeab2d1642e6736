"""All SQL of bookable services, their working hours and closures.

Every statement runs in the request's transaction as the caller: row-level security decides
which rows exist for it, so nothing here filters by tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from psycopg import sql

from slotease.db.database import Connection, Reader
from slotease.db.queries import Row, assignments, fetch_all, fetch_one, fetch_row, keyset_after
from slotease.kit.dberrors import refused_as, write_refusals

refused = refused_as(write_refusals("You may not change this organization."))

# A service with its week, in one row: the hours come from the covering index
# service_working_hours_service_idx, so listing services costs no query per service.
_SERVICE = sql.SQL(
    "s.id, s.organization_id, s.name, s.duration_minutes, s.capacity, s.buffer_minutes,"
    " s.min_notice_minutes, s.max_advance_days, s.slot_interval_minutes, s.price, s.currency,"
    " s.is_active, coalesce((select json_agg(json_build_object('weekday', h.weekday,"
    " 'start', to_char(h.start_time, 'HH24:MI'), 'end', to_char(h.end_time, 'HH24:MI'))"
    " order by h.weekday, h.start_time)"
    " from public.service_working_hours h where h.service_id = s.id), '[]') as working_hours"
)

# The same service as the JSON of services.schemas.Service, built by PostgreSQL: its fields
# in its order and formats (the price a decimal string, hours as "HH:MM"), compact like
# pydantic's output (row_to_json and array_to_json add no spaces, unlike json_build_object
# and json_agg), so the public list answers these bytes as they are.
_SERVICE_JSON = sql.SQL(
    "s.id, s.organization_id, s.name, s.duration_minutes, s.capacity, s.buffer_minutes,"
    " s.min_notice_minutes, s.max_advance_days, s.slot_interval_minutes,"
    " coalesce((select array_to_json(array_agg(row_to_json(h) order by h.weekday, h.start))"
    " from (select w.weekday, to_char(w.start_time, 'HH24:MI') as start,"
    " to_char(w.end_time, 'HH24:MI') as \"end\""
    " from public.service_working_hours w where w.service_id = s.id) h), '[]') as working_hours,"
    " s.price::text as price, s.currency, s.is_active"
)

_CLOSURE = sql.SQL("c.id, c.service_id, c.starts_at, c.ends_at, c.reason")


# ---------------------------------------------------------------------------------------
# Services and their week
# ---------------------------------------------------------------------------------------
@refused
async def insert_service(conn: Connection, org_id: UUID, columns: dict[str, Any]) -> UUID:
    names = sql.SQL(", ").join(sql.Identifier(name) for name in columns)
    values = sql.SQL(", ").join(sql.Placeholder(name) for name in columns)
    row = await fetch_row(
        conn,
        sql.SQL(
            "insert into public.services (organization_id, {}) values (%(org_id)s, {}) returning id"
        ).format(names, values),
        {**columns, "org_id": org_id},
    )
    service_id: UUID = row["id"]
    return service_id


@refused
async def replace_working_hours(
    conn: Connection, org_id: UUID, service_id: UUID, week: Sequence[tuple[int, str, str]]
) -> None:
    """The service's week becomes `week` ((weekday, "HH:MM", "HH:MM") intervals)."""
    await conn.execute(
        "delete from public.service_working_hours where service_id = %(service_id)s",
        {"service_id": service_id},
    )
    if not week:
        return
    await conn.execute(
        "insert into public.service_working_hours"
        " (organization_id, service_id, weekday, start_time, end_time)"
        " select %(org_id)s, %(service_id)s, w.weekday, w.start_time, w.end_time"
        " from unnest(%(weekdays)s::smallint[], %(starts)s::time[], %(ends)s::time[])"
        " as w (weekday, start_time, end_time)",
        {
            "org_id": org_id,
            "service_id": service_id,
            "weekdays": [weekday for weekday, _, _ in week],
            "starts": [time.fromisoformat(start) for _, start, _ in week],
            "ends": [time.fromisoformat(end) for _, _, end in week],
        },
    )


async def get_service(conn: Connection, service_id: UUID) -> Row | None:
    query = sql.SQL("select {} from public.services s where s.id = %(id)s").format(_SERVICE)
    return await fetch_one(conn, query, {"id": service_id})


def active_services_statement(
    org_id: UUID, *, after: Sequence[Any] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """The one statement behind the public services list (also run by bench/services_api.py
    through the compiled peer and pgbench, so every side of that benchmark runs the very same
    SQL). One row, or none when the caller cannot see the organization: `items`, the page's
    first `limit` services as the answer's JSON text, and `last_name`, `last_id`, the key of
    the last of them when one more follows (the next page's cursor)."""
    params: dict[str, Any] = {"org_id": org_id, "fetch": limit + 1, "limit": limit}
    keyset = keyset_after("s.name, s.id", after, params)
    query = sql.SQL(
        "select coalesce(array_to_json(array_agg(p.item order by p.n)"
        " filter (where p.n <= %(limit)s))::text, '[]') as items,"
        " (array_agg(p.name) filter (where p.n = %(limit)s and p.more))[1] as last_name,"
        " (array_agg(p.id) filter (where p.n = %(limit)s and p.more))[1] as last_id"
        " from public.organizations o left join lateral ("
        " select x.name, x.id, row_to_json(x) as item,"
        " row_number() over (order by x.name, x.id) as n, count(*) over () > %(limit)s as more"
        " from (select {} from public.services s"
        " where s.organization_id = o.id and s.is_active and {}"
        " order by s.name, s.id limit %(fetch)s) x) p on true"
        " where o.id = %(org_id)s group by o.id"
    ).format(_SERVICE_JSON, keyset)
    return query, params


async def active_services_page(
    read: Reader, org_id: UUID, *, after: Sequence[Any] | None, limit: int
) -> Row | None:
    """A page of the organization's active services by (name, id) as JSON (see
    active_services_statement), or None when the caller cannot see the organization: one
    statement in one round trip, as this is a hot public read."""
    query, params = active_services_statement(org_id, after=after, limit=limit)
    rows = await read(query, params)
    return rows[0] if rows else None


@refused
async def update_service(conn: Connection, service_id: UUID, columns: dict[str, Any]) -> bool:
    """False when RLS did not let the caller change the row."""
    row = await fetch_one(
        conn,
        sql.SQL("update public.services set {} where id = %(service_id)s returning id").format(
            assignments(columns)
        ),
        {**columns, "service_id": service_id},
    )
    return row is not None


# ---------------------------------------------------------------------------------------
# Closures
# ---------------------------------------------------------------------------------------
@refused
async def insert_closure(
    conn: Connection,
    org_id: UUID,
    service_id: UUID,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str | None,
) -> Row:
    return await fetch_row(
        conn,
        sql.SQL(
            "insert into public.service_closures as c"
            " (organization_id, service_id, starts_at, ends_at, reason)"
            " values (%(org_id)s, %(service_id)s, %(starts_at)s, %(ends_at)s, %(reason)s)"
            " returning {}"
        ).format(_CLOSURE),
        {
            "org_id": org_id,
            "service_id": service_id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "reason": reason,
        },
    )


async def list_closures(
    conn: Connection,
    service_id: UUID,
    *,
    timezone: str,
    first_day: date | None,
    last_day: date | None,
    after: Sequence[Any] | None,
    limit: int,
) -> list[Row]:
    """Closures overlapping the days `first_day`..`last_day` of `timezone`, by (starts_at, id)."""
    conditions: list[sql.Composable] = [sql.SQL("c.service_id = %(service_id)s")]
    params: dict[str, Any] = {"service_id": service_id, "tz": timezone, "limit": limit}
    if first_day is not None:
        conditions.append(
            sql.SQL("c.ends_at > (%(first_day)s::date)::timestamp at time zone %(tz)s")
        )
        params["first_day"] = first_day
    if last_day is not None:
        conditions.append(
            sql.SQL("c.starts_at < (%(last_day)s::date + 1)::timestamp at time zone %(tz)s")
        )
        params["last_day"] = last_day
    conditions.append(keyset_after("c.starts_at, c.id", after, params))
    query = sql.SQL(
        "select {} from public.service_closures c where {} order by c.starts_at, c.id"
        " limit %(limit)s"
    ).format(_CLOSURE, sql.SQL(" and ").join(conditions))
    return await fetch_all(conn, query, params)


@refused
async def delete_closure(conn: Connection, service_id: UUID, closure_id: UUID) -> bool:
    row = await fetch_one(
        conn,
        sql.SQL(
            "delete from public.service_closures where id = %(id)s and service_id = %(service_id)s"
            " returning id"
        ),
        {"id": closure_id, "service_id": service_id},
    )
    return row is not None
