"""All SQL of organizations, their members and invitations.

Every statement runs in the request's transaction as the caller: row-level security decides
which rows exist for it, so nothing here filters by tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from psycopg import errors, sql
from psycopg.types.json import Jsonb

from slotease.db.catalogue import SqlState, refusals_of
from slotease.db.database import Connection
from slotease.db.queries import Row, assignments, fetch_all, fetch_one, fetch_row, keyset_after
from slotease.kit.dberrors import (
    Refusal,
    RuleKey,
    refused_as,
    write_refusals,
)

SLUG_CONSTRAINT = "organizations_slug_key"

# The refusals of the writes below: those of every admin write, and the last-admin trigger.
_REFUSALS: dict[RuleKey, Refusal] = {
    **write_refusals("You may not change this organization."),
    **refusals_of(SqlState.LAST_ADMIN),
}
refused = refused_as(_REFUSALS)

_ORGANIZATION = sql.SQL(
    "o.id, o.name, o.slug, o.kind, o.timezone, o.address,"
    " case when o.location is null then null"
    " else json_build_object('lat', o.location[1], 'lng', o.location[0]) end as location,"
    " json_build_object('require_mfa', coalesce(o.settings -> 'require_mfa' = 'true', false))"
    " as settings"
)


# ---------------------------------------------------------------------------------------
# Organizations
# ---------------------------------------------------------------------------------------
@refused
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
) -> Row | None:
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


async def get_organization(conn: Connection, org_id: UUID) -> Row | None:
    query = sql.SQL("select {} from public.organizations o where o.id = %(id)s").format(
        _ORGANIZATION
    )
    return await fetch_one(conn, query, {"id": org_id})


@refused
async def update_organization(
    conn: Connection, org_id: UUID, columns: dict[str, Any], location: tuple[float, float] | None
) -> Row | None:
    """Apply `columns` (and `location` as (lat, lng) when given); None if RLS hid the row."""
    settings = columns.pop("settings", None)
    changes = assignments(columns)
    params: dict[str, Any] = {**columns, "org_id": org_id}
    if settings is not None:
        # Merged: the settings also hold what other routes write (templates, for instance).
        changes = sql.SQL("{}, settings = o.settings || %(settings)s").format(changes)
        params["settings"] = Jsonb(settings)
    if location is not None:
        changes = sql.SQL("{}, location = point(%(lng)s, %(lat)s)").format(changes)
        params["lat"], params["lng"] = location
    query = sql.SQL(
        "update public.organizations as o set {} where o.id = %(org_id)s returning {}"
    ).format(changes, _ORGANIZATION)
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
) -> list[Row]:
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
        conditions.append(keyset_after("o.name, o.id", after, params))
        query = sql.SQL(
            "select {}, null::float8 as distance_km from public.organizations o"
            " where {} order by o.name, o.id limit %(limit)s"
        ).format(_ORGANIZATION, sql.SQL(" and ").join(conditions))
        return await fetch_all(conn, query, params)

    params["lat"], params["lng"] = nearby.lat, nearby.lng
    conditions.append(sql.SQL("o.location is not null"))
    outer = [keyset_after("n.distance_km, n.id", after, params)]
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
) -> list[Row]:
    """Ordered by (full_name, user_id). Profiles the caller may not read show an empty name."""
    params: dict[str, Any] = {"org_id": org_id, "limit": limit}
    keyset = keyset_after("coalesce(p.full_name, ''), m.user_id", after, params)
    query = sql.SQL(
        "select m.user_id, m.organization_id, m.role, coalesce(p.full_name, '') as full_name"
        " from public.organization_members m"
        " left join public.user_profiles p on p.user_id = m.user_id"
        " where m.organization_id = %(org_id)s and {}"
        " order by coalesce(p.full_name, ''), m.user_id limit %(limit)s"
    ).format(keyset)
    return await fetch_all(conn, query, params)


@refused
async def update_member_role(
    conn: Connection, org_id: UUID, user_id: UUID, role: str
) -> Row | None:
    """None when the caller sees no such member (or may not change it)."""
    return await fetch_one(
        conn,
        sql.SQL(
            "update public.organization_members set role = %(role)s"
            " where organization_id = %(org_id)s and user_id = %(user_id)s"
            " returning user_id, organization_id, role"
        ),
        {"role": role, "org_id": org_id, "user_id": user_id},
    )


@refused
async def delete_member(conn: Connection, org_id: UUID, user_id: UUID) -> bool:
    row = await fetch_one(
        conn,
        sql.SQL(
            "delete from public.organization_members"
            " where organization_id = %(org_id)s and user_id = %(user_id)s returning user_id"
        ),
        {"org_id": org_id, "user_id": user_id},
    )
    return row is not None


# ---------------------------------------------------------------------------------------
# Invitations
# ---------------------------------------------------------------------------------------
_INVITATION = sql.SQL(
    "i.id as invitation_id, i.organization_id, coalesce(o.name, '') as organization_name,"
    " i.email, i.role, i.status, i.expires_at, i.created_at"
)


@refused
async def replace_invitation(
    conn: Connection, org_id: UUID, *, email: str, role: str, token_hash: str, ttl: timedelta
) -> Row:
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
) -> list[Row]:
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
    ).format(_INVITATION, whose, keyset_after("i.created_at, i.id", after, params))
    return await fetch_all(conn, query, params)


@refused
async def accept_invitation(conn: Connection, invitation_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        sql.SQL("select organization_id, user_id, role from app.accept_invitation(%(id)s)"),
        {"id": invitation_id},
    )


async def delete_invitation(conn: Connection, invitation_id: UUID) -> bool:
    row = await fetch_one(
        conn,
        sql.SQL("delete from public.invitations where id = %(id)s returning id"),
        {"id": invitation_id},
    )
    return row is not None


async def invitation_to_mail(conn: Connection, invitation_id: UUID, org_id: UUID) -> Row | None:
    """As service_role: what the invitation email says, while the invitation is pending."""
    return await fetch_one(
        conn,
        sql.SQL(
            "select i.email, i.role, i.expires_at, o.name as organization"
            " from public.invitations i join public.organizations o on o.id = i.organization_id"
            " where i.id = %(id)s and i.organization_id = %(org_id)s and i.status = 'pending'"
            " and i.expires_at > now()"
        ),
        {"id": invitation_id, "org_id": org_id},
    )
