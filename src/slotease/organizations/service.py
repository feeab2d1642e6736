"""Rules of organizations, members, services and closures. No SQL here and no commit: the
request owns the transaction, and row-level security decides what the caller sees."""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import DictRow

from slotease.auth import repository as auth_repository
from slotease.auth.tokens import hash_secret
from slotease.db.database import Connection
from slotease.kit.dberrors import (
    CHECK_VIOLATION,
    INSUFFICIENT_PRIVILEGE,
    Refusal,
    RuleKey,
    refusals,
)
from slotease.kit.pagination import decode_cursor, page_of
from slotease.kit.problems import Conflict, Forbidden, NotFound, Unprocessable
from slotease.organizations import repository
from slotease.organizations.invitation_mail import enqueue_invitation_mail
from slotease.organizations.repository import Nearby, TextQuery
from slotease.organizations.schemas import (
    ClosureCreate,
    ClosureRange,
    InvitationCreate,
    MemberRoleChange,
    OrganizationCreate,
    OrganizationSearch,
    OrganizationUpdate,
    ServiceCreate,
    ServiceUpdate,
    WorkingHours,
)

LAST_ADMIN_SQLSTATE = "P0409"
SLUG_MAX_LENGTH = 50
SLUG_ATTEMPTS = 5
# The same mean Earth radius as app.haversine_km, so the box never cuts inside the radius.
EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180

INVITATION_TOKEN_PREFIX = "inv_"
INVITATION_TTL = timedelta(days=7)

_PREFIX_WORD = re.compile(r"[^\W_]+")


# A check constraint our validation missed (422), a policy's WITH CHECK (403), the
# last-admin trigger (409).
_REFUSALS: dict[RuleKey, Refusal] = {
    CHECK_VIOLATION: lambda _: Unprocessable("A value is out of the allowed range."),
    INSUFFICIENT_PRIVILEGE: lambda _: Forbidden("You may not change this organization."),
    LAST_ADMIN_SQLSTATE: lambda _: Conflict("An organization must keep at least one admin."),
}


async def require_admin(
    conn: Connection, org_id: UUID, forbidden: str = "Only the organization's admins may do this."
) -> None:
    """404 when the caller cannot see the organization, 403 (`forbidden`) when it sees but does
    not run it. Every feature's admin-only action checks through here; the write that follows
    still goes through RLS."""
    access = await repository.organization_access(conn, org_id)
    if not access["visible"]:
        raise NotFound("No such organization.")
    if not access["is_admin"]:
        raise Forbidden(forbidden)


async def _require_service_admin(conn: Connection, service_id: UUID) -> DictRow:
    access = await repository.service_access(conn, service_id)
    if access is None:
        raise NotFound("No such service.")
    if not access["is_admin"]:
        raise Forbidden("Only the organization's admins may do this.")
    return access


def _text_key(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a text key")
    return value


def _number_key(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number key")
    return float(value)


def _timestamp_key(value: Any) -> datetime:
    return datetime.fromisoformat(_text_key(value))


def _cursor_key(cursor: str | None, parse_key: Callable[[Any], Any]) -> tuple[Any, UUID] | None:
    """The (sort value, id) of a cursor, checked so that a forged one is a 422, not a 500."""
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    try:
        return parse_key(values[0]), UUID(_text_key(values[1]))
    except ValueError:
        raise Unprocessable("The cursor is not valid.") from None


# ---------------------------------------------------------------------------------------
# Organizations
# ---------------------------------------------------------------------------------------
def slugify(name: str) -> str:
    """Lowercase ASCII words joined by hyphens, as the slug check constraint wants."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX_LENGTH].rstrip("-") or "org"


async def create_organization(conn: Connection, body: OrganizationCreate) -> DictRow:
    base = slugify(body.name)
    for attempt in range(SLUG_ATTEMPTS):
        slug = base if attempt == 0 else f"{base}-{secrets.token_hex(3)}"
        with refusals(_REFUSALS):
            row = await repository.insert_organization(
                conn,
                name=body.name,
                slug=slug,
                kind=body.kind,
                timezone=body.timezone,
                address=body.address,
                lat=body.location.lat if body.location else None,
                lng=body.location.lng if body.location else None,
            )
        if row is not None:
            return row
    raise Conflict("Could not find a free slug for this name; try another name.")


async def get_organization(conn: Connection, org_id: UUID) -> DictRow:
    row = await repository.get_organization(conn, org_id)
    if row is None:
        raise NotFound("No such organization.")
    return row


async def update_organization(conn: Connection, org_id: UUID, body: OrganizationUpdate) -> DictRow:
    await require_admin(conn, org_id)
    if "is_active" in body.model_fields_set and not await repository.is_super_admin(conn):
        raise Forbidden("Only platform admins may activate or deactivate an organization.")
    if body.settings is not None and body.settings.require_mfa:
        account = await auth_repository.my_account(conn)
        if account is not None and not account["mfa_enabled"]:
            # Otherwise the admin would lock themselves out of their own organization.
            raise Conflict("Turn on multi-factor sign-in yourself before requiring it.")
    columns = body.model_dump(include=body.model_fields_set - {"location"})
    location = None
    if "location" in body.model_fields_set:
        if body.location is None:
            columns["location"] = None
        else:
            location = (body.location.lat, body.location.lng)
    with refusals(_REFUSALS):
        row = await repository.update_organization(conn, org_id, columns, location)
    if row is None:
        raise Forbidden("Only the organization's admins may do this.")
    return row


def text_query(q: str) -> TextQuery:
    """websearch_to_tsquery semantics, with the last word also matching as a prefix so that
    results follow as one types ("cent" finds "Central"). The prefix applies only to a plain
    last word (not inside a quoted phrase, not negated) of a query without OR, whose
    precedence an extra AND would change."""
    words = q.split()
    last = words[-1]
    if (
        _PREFIX_WORD.fullmatch(last)
        and q.count('"') % 2 == 0
        and "or" not in (word.lower() for word in words)
    ):
        return TextQuery(websearch=q[: q.rindex(last)].strip(), prefix=last)
    return TextQuery(websearch=q, prefix=None)


def bounding_box(lat: float, lng: float, radius_km: float) -> tuple[float, float, float, float]:
    """(lng_min, lat_min, lng_max, lat_max) containing every point within `radius_km`.

    Near a pole, or across the antimeridian, the box takes every longitude: a wider box only
    costs index selectivity, and the exact distance filter follows.
    """
    angular = radius_km / EARTH_RADIUS_KM
    lat_delta = math.degrees(angular)
    lat_min, lat_max = max(-90.0, lat - lat_delta), min(90.0, lat + lat_delta)
    if lat_min <= -90.0 or lat_max >= 90.0 or angular >= math.pi / 2:
        return -180.0, lat_min, 180.0, lat_max
    ratio = math.sin(angular) / math.cos(math.radians(lat))
    if ratio >= 1:
        return -180.0, lat_min, 180.0, lat_max
    lng_delta = math.degrees(math.asin(ratio))
    if lng - lng_delta < -180.0 or lng + lng_delta > 180.0:
        return -180.0, lat_min, 180.0, lat_max
    return lng - lng_delta, lat_min, lng + lng_delta, lat_max


async def search_organizations(
    conn: Connection, search: OrganizationSearch
) -> tuple[list[DictRow], str | None]:
    near = search.near_location
    nearby = None
    if near is not None:
        box = None
        if search.radius_km is not None:
            box = bounding_box(near.lat, near.lng, search.radius_km)
        nearby = Nearby(lat=near.lat, lng=near.lng, radius_km=search.radius_km, box=box)
    after = _cursor_key(search.cursor, _number_key if nearby else _text_key)
    rows = await repository.search_organizations(
        conn,
        text=text_query(search.q) if search.q else None,
        kind=search.kind,
        nearby=nearby,
        after=after,
        limit=search.limit + 1,
    )
    return page_of(rows, search.limit, ["distance_km" if nearby else "name", "id"])


# ---------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------
async def list_members(
    conn: Connection, org_id: UUID, *, limit: int, cursor: str | None
) -> tuple[list[DictRow], str | None]:
    after = _cursor_key(cursor, _text_key)
    rows = await repository.list_members(conn, org_id, after=after, limit=limit + 1)
    if not rows:
        # Only an empty page costs the check: members always see at least themselves.
        access = await repository.organization_access(conn, org_id)
        if not access["visible"]:
            raise NotFound("No such organization.")
        if not access["is_member"]:
            raise Forbidden("Only the organization's members may see its members.")
    return page_of(rows, limit, ["full_name", "user_id"])


async def change_member_role(
    conn: Connection, org_id: UUID, user_id: UUID, body: MemberRoleChange
) -> DictRow:
    await require_admin(conn, org_id)
    with refusals(_REFUSALS):
        row = await repository.update_member_role(conn, org_id, user_id, body.role)
    if row is None:
        raise NotFound("No such member.")
    return row


async def remove_member(conn: Connection, org_id: UUID, user_id: UUID) -> None:
    await require_admin(conn, org_id)
    with refusals(_REFUSALS):
        removed = await repository.delete_member(conn, org_id, user_id)
    if not removed:
        raise NotFound("No such member.")


# ---------------------------------------------------------------------------------------
# Invitations
# ---------------------------------------------------------------------------------------
async def invite(conn: Connection, org_id: UUID, body: InvitationCreate) -> DictRow:
    """Nothing in the answer or the work done depends on whether the address has an account:
    the link goes out either way, and an invitee without one signs up to accept."""
    await require_admin(conn, org_id)
    token = INVITATION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with refusals(_REFUSALS):
        row = await repository.replace_invitation(
            conn,
            org_id,
            email=body.email,
            role=body.role,
            token_hash=hash_secret(token),
            ttl=INVITATION_TTL,
        )
    await enqueue_invitation_mail(conn, row["invitation_id"], org_id, token)
    return row


async def list_invitations(
    conn: Connection, org_id: UUID, *, limit: int, cursor: str | None
) -> tuple[list[DictRow], str | None]:
    await require_admin(conn, org_id, "Only the organization's admins may see its invitations.")
    after = _cursor_key(cursor, _timestamp_key)
    rows = await repository.list_invitations(conn, org_id, after=after, limit=limit + 1)
    return page_of(rows, limit, ["created_at", "invitation_id"])


async def my_invitations(
    conn: Connection, *, limit: int, cursor: str | None
) -> tuple[list[DictRow], str | None]:
    after = _cursor_key(cursor, _timestamp_key)
    rows = await repository.list_invitations(conn, None, after=after, limit=limit + 1)
    return page_of(rows, limit, ["created_at", "invitation_id"])


async def accept_invitation(conn: Connection, invitation_id: UUID) -> DictRow:
    """The address is compared, not yet proven: until sign-up verifies addresses, whoever
    signs up with an invited address may accept for it."""
    with refusals(_REFUSALS):
        row = await repository.accept_invitation(conn, invitation_id)
    if row is None:
        raise NotFound("No such invitation.")
    return row


async def delete_invitation(conn: Connection, invitation_id: UUID) -> None:
    """An admin revokes, the invitee declines: either may see it, and either may remove it."""
    if not await repository.delete_invitation(conn, invitation_id):
        raise NotFound("No such invitation.")


# ---------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------
def _week(hours: list[WorkingHours]) -> list[tuple[int, str, str]]:
    return [(h.weekday, h.start, h.end) for h in hours]


async def get_service(conn: Connection, service_id: UUID) -> DictRow:
    row = await repository.get_service(conn, service_id)
    if row is None:
        raise NotFound("No such service.")
    return row


async def create_service(conn: Connection, org_id: UUID, body: ServiceCreate) -> DictRow:
    await require_admin(conn, org_id)
    with refusals(_REFUSALS):
        service_id = await repository.insert_service(conn, org_id, body.columns())
        await repository.replace_working_hours(conn, org_id, service_id, _week(body.working_hours))
    return await get_service(conn, service_id)


async def list_services(
    conn: Connection, org_id: UUID, *, limit: int, cursor: str | None
) -> tuple[list[DictRow], str | None]:
    after = _cursor_key(cursor, _text_key)
    rows = await repository.list_active_services(conn, org_id, after=after, limit=limit + 1)
    if rows is None:
        raise NotFound("No such organization.")
    return page_of(rows, limit, ["name", "id"])


async def update_service(conn: Connection, service_id: UUID, body: ServiceUpdate) -> DictRow:
    access = await _require_service_admin(conn, service_id)
    with refusals(_REFUSALS):
        if not await repository.update_service(conn, service_id, body.columns()):
            raise Forbidden("Only the organization's admins may do this.")
        if body.working_hours is not None:
            await repository.replace_working_hours(
                conn, access["organization_id"], service_id, _week(body.working_hours)
            )
    return await get_service(conn, service_id)


# ---------------------------------------------------------------------------------------
# Closures
# ---------------------------------------------------------------------------------------
async def add_closure(conn: Connection, service_id: UUID, body: ClosureCreate) -> DictRow:
    access = await _require_service_admin(conn, service_id)
    with refusals(_REFUSALS):
        return await repository.insert_closure(
            conn,
            access["organization_id"],
            service_id,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            reason=body.reason,
        )


async def list_closures(
    conn: Connection, service_id: UUID, window: ClosureRange
) -> tuple[list[DictRow], str | None]:
    access = await repository.service_access(conn, service_id)
    if access is None:
        raise NotFound("No such service.")
    after = _cursor_key(window.cursor, _timestamp_key)
    rows = await repository.list_closures(
        conn,
        service_id,
        timezone=access["timezone"],
        first_day=window.from_,
        last_day=window.to,
        after=after,
        limit=window.limit + 1,
    )
    return page_of(rows, window.limit, ["starts_at", "id"])


async def remove_closure(conn: Connection, service_id: UUID, closure_id: UUID) -> None:
    await _require_service_admin(conn, service_id)
    with refusals(_REFUSALS):
        removed = await repository.delete_closure(conn, service_id, closure_id)
    if not removed:
        raise NotFound("No such closure.")
