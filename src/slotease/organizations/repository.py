"""All SQL of organizations, members, services, working hours and closures.

Every statement runs in the request's transaction as the caller: row-level security decides
which rows exist for it, so nothing here filters by tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from psycopg import errors, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import fetch_all, fetch_one, fetch_row

SLUG_CONSTRAINT = "organizations_slug_key"

_ORGANIZATION = sql.SQL(
    "o.id, o.name, o.slug, o.kind, o.timezone, o.address,"
    " case when o.location is null then null"
    " else json_build_object('lat', o.location[1], 'lng', o.location[0]) end as location,"
    " json_build_object('require_mfa', coalesce(o.settings -> 'require_mfa' = 'true', false))"
    " as settings"
)

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

_CLOSURE = sql.SQL("c.id, c.service_id, c.starts_at, c.ends_at, c.reason")


def _assignments(columns: dict[str, Any]) -> sql.Composed:
    """`updated_at = now(), col = %(col)s, ...`; column names come from our own models."""
    parts: list[sql.Composable] = [sql.SQL("updated_at = now()")]
    parts += [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in columns
    ]
    return sql.SQL(", ").join(parts)


def _after(sort_key: str, after: Sequence[Any] | None, params: dict[str, Any]) -> sql.Composable:
    """The keyset condition `(sort_key) > (cursor values)`, or `true` on a first page."""
    if after is None:
        return sql.SQL("true")
    params["after_key"], params["after_id"] = after
    return sql.SQL("({}) > (%(after_key)s, %(after_id)s)").format(sql.SQL(sort_key))


# ---------------------------------------------------------------------------------------
# Organizations
# ---------------------------------------------------------------------------------------
async def insert_organization(
    conn: Connection,
    *,
    name: str,
    slug: str,
    kind: str,
    timezone: str,
    address: str | None,
    lat: float | None,
    lng: float | None,
) -> DictRow | None:
    """The new organization, or None when the slug is taken (the transaction goes on)."""
    query = sql.SQL(
        "insert into public.organizations as o (name, slug, kind, timezone, address, location,"
        " created_by) values (%(name)s, %(slug)s, %(kind)s, %(timezone)s, %(address)s,"
        " point(%(lng)s, %(lat)s), auth.uid()) returning {}"
    ).format(_ORGANIZATION)
    params = {
        "name": name,
        "slug": slug,
        "kind": kind,
        "timezone": timezone,
        "address": address,
        "lat": lat,
        "lng": lng,
    }
    try:
        # A savepoint, so that a slug collision does not abort the request's transaction.
        async with conn.transaction():
            return await fetch_one(conn, query, params)
    except errors.UniqueViolation as exc:
        if exc.diag.constraint_name == SLUG_CONSTRAINT:
            return None
        raise


async def get_organization(conn: Connection, org_id: UUID) -> DictRow | None:
    query = sql.SQL("select {} from public.organizations o where o.id = %s").format(_ORGANIZATION)
    return await fetch_one(conn, query, (org_id,))


async def organization_access(conn: Connection, org_id: UUID) -> DictRow:
    """Whether the caller sees the organization, and whether it administers it."""
    row = await fetch_one(
        conn,
        sql.SQL(
            "select exists (select 1 from public.organizations where id = %(id)s) as visible,"
            " app.is_org_member(%(id)s) as is_member, app.is_org_admin(%(id)s) as is_admin"
        ),
        {"id": org_id},
    )
    assert row is not None
    return row


async def is_super_admin(conn: Connection) -> bool:
    row = await fetch_one(conn, sql.SQL("select app.is_super_admin() as yes"))
    return bool(row and row["yes"])


async def update_organization(
    conn: Connection, org_id: UUID, columns: dict[str, Any], location: tuple[float, float] | None
) -> DictRow | None:
    """Apply `columns` (and `location` as (lat, lng) when given); None if RLS hid the row."""
    settings = columns.pop("settings", None)
    assignments = _assignments(columns)
    params: dict[str, Any] = {**columns, "org_id": org_id}
    if settings is not None:
        # Merged: the settings also hold what other routes write (templates, for instance).
        assignments = sql.SQL("{}, settings = o.settings || %(settings)s").format(assignments)
        params["settings"] = Jsonb(settings)
    if location is not None:
        assignments = sql.SQL("{}, location = point(%(lng)s, %(lat)s)").format(assignments)
        params["lat"], params["lng"] = location
    query = sql.SQL(
        "update public.organizations as o set {} where o.id = %(org_id)s returning {}"
    ).format(assignments, _ORGANIZATION)
    return await fetch_one(conn, query, params)


@dataclass(frozen=True)
class TextQuery:
    """`websearch` goes through websearch_to_tsquery; `prefix`, already sanitized to letters
    and digits, matches as a prefix (`word:*`)."""

    websearch: str
    prefix: str | None


@dataclass(frozen=True)
class Nearby:
    lat: float
    lng: float
    radius_km: float | None
    # (lng_min, lat_min, lng_max, lat_max) around the radius, for the GiST index.
    box: tuple[float, float, float, float] | None


def _tsquery(text: TextQuery) -> sql.Composable:
    if text.prefix is None:
        return sql.SQL("websearch_to_tsquery('simple', %(q)s)")
    prefix = sql.SQL("to_tsquery('simple', %(q_prefix)s || ':*')")
    if not text.websearch:
        return prefix
    return sql.SQL("(websearch_to_tsquery('simple', %(q)s) && {})").format(prefix)


async def search_organizations(
    conn: Connection,
    *,
    text: TextQuery | None,
    kind: str | None,
    nearby: Nearby | None,
    after: Sequence[Any] | None,
    limit: int,
) -> list[DictRow]:
    """One page of active organizations (`limit` rows, plus one to tell whether more follow)
    ordered by (name, id), or by (distance_km, id) with `nearby`; `after` is the sort key of
    the previous page."""
    conditions: list[sql.Composable] = [sql.SQL("o.is_active")]
    params: dict[str, Any] = {"limit": limit}
    tsquery: sql.Composable = sql.SQL("null::tsquery")
    area: sql.Composable = sql.SQL("null::box")
    if text is not None:
        tsquery = _tsquery(text)
        params["q"], params["q_prefix"] = text.websearch, text.prefix
    if nearby is not None and nearby.box is not None:
        area = sql.SQL("box(point(%(lng_min)s, %(lat_min)s), point(%(lng_max)s, %(lat_max)s))")
        params.update(zip(("lng_min", "lat_min", "lng_max", "lat_max"), nearby.box, strict=True))
    if text is not None or (nearby is not None and nearby.box is not None):
        # The indexes answer through app.directory_candidates (see migration 0002): under RLS
        # they cannot serve `@@` or `<@` directly.
        conditions.append(
            sql.SQL("o.id = any (array(select app.directory_candidates({}, {})))").format(
                tsquery, area
            )
        )
    if kind is not None:
        conditions.append(sql.SQL("o.kind = %(kind)s"))
        params["kind"] = kind

    if nearby is None:
        conditions.append(_after("o.name, o.id", after, params))
        query = sql.SQL(
            "select {}, null::float8 as distance_km from public.organizations o"
            " where {} order by o.name, o.id limit %(limit)s"
        ).format(_ORGANIZATION, sql.SQL(" and ").join(conditions))
        return await fetch_all(conn, query, params)

    params["lat"], params["lng"] = nearby.lat, nearby.lng
    conditions.append(sql.SQL("o.location is not null"))
    outer = [_after("n.distance_km, n.id", after, params)]
    if nearby.radius_km is not None:
        outer.append(sql.SQL("n.distance_km <= %(radius_km)s"))
        params["radius_km"] = nearby.radius_km
    query = sql.SQL(
        "select n.* from (select {}, app.haversine_km(%(lat)s, %(lng)s, o.location[1],"
        " o.location[0]) as distance_km from public.organizations o where {}) n"
        " where {} order by n.distance_km, n.id limit %(limit)s"
    ).format(_ORGANIZATION, sql.SQL(" and ").join(conditions), sql.SQL(" and ").join(outer))
    return await fetch_all(conn, query, params)


# ---------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------
async def list_members(
    conn: Connection, org_id: UUID, *, after: Sequence[Any] | None, limit: int
) -> list[DictRow]:
    """Ordered by (full_name, user_id). Profiles the caller may not read show an empty name."""
    params: dict[str, Any] = {"org_id": org_id, "limit": limit}
    keyset = _after("coalesce(p.full_name, ''), m.user_id", after, params)
    query = sql.SQL(
        "select m.user_id, m.organization_id, m.role, coalesce(p.full_name, '') as full_name"
        " from public.organization_members m"
        " left join public.user_profiles p on p.user_id = m.user_id"
        " where m.organization_id = %(org_id)s and {}"
        " order by coalesce(p.full_name, ''), m.user_id limit %(limit)s"
    ).format(keyset)
    return await fetch_all(conn, query, params)


async def update_member_role(
    conn: Connection, org_id: UUID, user_id: UUID, role: str
) -> DictRow | None:
    """None when the caller sees no such member (or may not change it)."""
    return await fetch_one(
        conn,
        sql.SQL(
            "update public.organization_members set role = %s"
            " where organization_id = %s and user_id = %s"
            " returning user_id, organization_id, role"
        ),
        (role, org_id, user_id),
    )


async def delete_member(conn: Connection, org_id: UUID, user_id: UUID) -> bool:
    row = await fetch_one(
        conn,
        sql.SQL(
            "delete from public.organization_members where organization_id = %s and user_id = %s"
            " returning user_id"
        ),
        (org_id, user_id),
    )
    return row is not None


# ---------------------------------------------------------------------------------------
# Invitations
# ---------------------------------------------------------------------------------------
_INVITATION = sql.SQL(
    "i.id as invitation_id, i.organization_id, coalesce(o.name, '') as organization_name,"
    " i.email, i.role, i.status, i.expires_at, i.created_at"
)


async def replace_invitation(
    conn: Connection, org_id: UUID, *, email: str, role: str, token_hash: str, ttl: timedelta
) -> DictRow:
    """A new pending invitation of `email`; one still pending for that address is dropped, so
    only the latest link works."""
    return await fetch_row(
        conn,
        sql.SQL(
            "with dropped as (delete from public.invitations where organization_id = %(org)s"
            " and lower(email) = lower(%(email)s) and status = 'pending')"
            " insert into public.invitations"
            " (organization_id, email, role, token_hash, invited_by, expires_at)"
            " values (%(org)s, %(email)s, %(role)s, %(hash)s, auth.uid(), now() + %(ttl)s)"
            " returning id as invitation_id, email, role, status"
        ),
        {"org": org_id, "email": email, "role": role, "hash": token_hash, "ttl": ttl},
    )


async def list_invitations(
    conn: Connection, org_id: UUID | None, *, after: Sequence[Any] | None, limit: int
) -> list[DictRow]:
    """Pending, unexpired invitations by (created_at, id): the organization's with `org_id`,
    else those addressed to the caller."""
    params: dict[str, Any] = {"org": org_id, "limit": limit}
    whose = (
        sql.SQL("lower(i.email) = app.my_email()")
        if org_id is None
        else sql.SQL("i.organization_id = %(org)s")
    )
    query = sql.SQL(
        "select {} from public.invitations i"
        " left join public.organizations o on o.id = i.organization_id"
        " where {} and i.status = 'pending' and i.expires_at > now() and {}"
        " order by i.created_at, i.id limit %(limit)s"
    ).format(_INVITATION, whose, _after("i.created_at, i.id", after, params))
    return await fetch_all(conn, query, params)


async def accept_invitation(conn: Connection, invitation_id: UUID) -> DictRow | None:
    return await fetch_one(
        conn,
        sql.SQL("select organization_id, user_id, role from app.accept_invitation(%s)"),
        (invitation_id,),
    )


async def delete_invitation(conn: Connection, invitation_id: UUID) -> bool:
    row = await fetch_one(
        conn,
        sql.SQL("delete from public.invitations where id = %s returning id"),
        (invitation_id,),
    )
    return row is not None


async def invitation_to_mail(conn: Connection, invitation_id: UUID, org_id: UUID) -> DictRow | None:
    """As service_role: what the invitation email says, while the invitation is pending."""
    return await fetch_one(
        conn,
        sql.SQL(
            "select i.email, i.role, i.expires_at, o.name as organization"
            " from public.invitations i join public.organizations o on o.id = i.organization_id"
            " where i.id = %s and i.organization_id = %s and i.status = 'pending'"
            " and i.expires_at > now()"
        ),
        (invitation_id, org_id),
    )


# ---------------------------------------------------------------------------------------
# Services and their week
# ---------------------------------------------------------------------------------------
async def insert_service(conn: Connection, org_id: UUID, columns: dict[str, Any]) -> UUID:
    names = sql.SQL(", ").join(sql.Identifier(name) for name in columns)
    values = sql.SQL(", ").join(sql.Placeholder(name) for name in columns)
    row = await fetch_one(
        conn,
        sql.SQL(
            "insert into public.services (organization_id, {}) values (%(org_id)s, {}) returning id"
        ).format(names, values),
        {**columns, "org_id": org_id},
    )
    assert row is not None
    service_id: UUID = row["id"]
    return service_id


async def replace_working_hours(
    conn: Connection, org_id: UUID, service_id: UUID, week: Sequence[tuple[int, str, str]]
) -> None:
    """The service's week becomes `week` ((weekday, "HH:MM", "HH:MM") intervals)."""
    await conn.execute(
        "delete from public.service_working_hours where service_id = %s", (service_id,)
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


async def get_service(conn: Connection, service_id: UUID) -> DictRow | None:
    query = sql.SQL("select {} from public.services s where s.id = %s").format(_SERVICE)
    return await fetch_one(conn, query, (service_id,))


async def service_access(conn: Connection, service_id: UUID) -> DictRow | None:
    """The service's organization, its timezone, and whether the caller administers it; None
    when the caller cannot see the service."""
    return await fetch_one(
        conn,
        sql.SQL(
            "select s.organization_id, o.timezone, app.is_org_admin(s.organization_id) as is_admin"
            " from public.services s join public.organizations o on o.id = s.organization_id"
            " where s.id = %s"
        ),
        (service_id,),
    )


def active_services_statement(
    org_id: UUID, *, after: Sequence[Any] | None, limit: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """The one statement behind the public services list (also run by bench/services_api.py
    through pgbench, so both sides of that benchmark run the very same SQL)."""
    params: dict[str, Any] = {"org_id": org_id, "limit": limit}
    keyset = _after("s.name, s.id", after, params)
    query = sql.SQL(
        "select s.* from public.organizations o left join lateral ("
        " select {} from public.services s"
        " where s.organization_id = o.id and s.is_active and {}"
        " order by s.name, s.id limit %(limit)s) s on true"
        " where o.id = %(org_id)s"
    ).format(_SERVICE, keyset)
    return query, params


async def list_active_services(
    conn: Connection, org_id: UUID, *, after: Sequence[Any] | None, limit: int
) -> list[DictRow] | None:
    """A page of the organization's active services by (name, id), or None when the caller
    cannot see the organization: one statement, as this is a hot public read."""
    query, params = active_services_statement(org_id, after=after, limit=limit)
    rows = await fetch_all(conn, query, params)
    if not rows:
        return None
    return [row for row in rows if row["id"] is not None]


async def update_service(conn: Connection, service_id: UUID, columns: dict[str, Any]) -> bool:
    """False when RLS did not let the caller change the row."""
    row = await fetch_one(
        conn,
        sql.SQL("update public.services set {} where id = %(service_id)s returning id").format(
            _assignments(columns)
        ),
        {**columns, "service_id": service_id},
    )
    return row is not None


# ---------------------------------------------------------------------------------------
# Closures
# ---------------------------------------------------------------------------------------
async def insert_closure(
    conn: Connection,
    org_id: UUID,
    service_id: UUID,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str | None,
) -> DictRow:
    row = await fetch_one(
        conn,
        sql.SQL(
            "insert into public.service_closures as c"
            " (organization_id, service_id, starts_at, ends_at, reason)"
            " values (%s, %s, %s, %s, %s) returning {}"
        ).format(_CLOSURE),
        (org_id, service_id, starts_at, ends_at, reason),
    )
    assert row is not None
    return row


async def list_closures(
    conn: Connection,
    service_id: UUID,
    *,
    timezone: str,
    first_day: date | None,
    last_day: date | None,
    after: Sequence[Any] | None,
    limit: int,
) -> list[DictRow]:
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
    conditions.append(_after("c.starts_at, c.id", after, params))
    query = sql.SQL(
        "select {} from public.service_closures c where {} order by c.starts_at, c.id"
        " limit %(limit)s"
    ).format(_CLOSURE, sql.SQL(" and ").join(conditions))
    return await fetch_all(conn, query, params)


async def delete_closure(conn: Connection, service_id: UUID, closure_id: UUID) -> bool:
    row = await fetch_one(
        conn,
        sql.SQL(
            "delete from public.service_closures where id = %s and service_id = %s returning id"
        ),
        (closure_id, service_id),
    )
    return row is not None
