"""Rules of organizations, their members and invitations. No SQL here and no commit: the
request owns the transaction, and row-level security decides what the caller sees."""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from datetime import timedelta
from uuid import UUID

from slotease.auth import service as auth_service
from slotease.db.database import Connection
from slotease.kit.pagination import (
    Page,
    cursor_key,
    model_page,
    number_key,
    text_key,
    timestamp_key,
)
from slotease.kit.problems import Conflict, Forbidden, NotFound
from slotease.kit.secrets import hash_secret
from slotease.organizations import access, repository
from slotease.organizations.access import ADMINS_ONLY, NO_SUCH_ORGANIZATION, require_admin
from slotease.organizations.invitation_mail import enqueue_invitation_mail
from slotease.organizations.repository import Nearby, TextQuery
from slotease.organizations.schemas import (
    Invitation,
    InvitationCreate,
    InvitationSent,
    Member,
    MemberRoleChange,
    Membership,
    Organization,
    OrganizationCreate,
    OrganizationListItem,
    OrganizationSearch,
    OrganizationUpdate,
)

SLUG_MAX_LENGTH = 50
SLUG_ATTEMPTS = 5
# The same mean Earth radius as app.haversine_km, so the box never cuts inside the radius.
EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180

INVITATION_TOKEN_PREFIX = "inv_"
INVITATION_TTL = timedelta(days=7)

_PREFIX_WORD = re.compile(r"[^\W_]+")


# ---------------------------------------------------------------------------------------
# Organizations
# ---------------------------------------------------------------------------------------
def slugify(name: str) -> str:
    """Lowercase ASCII words joined by hyphens, as the slug check constraint wants."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX_LENGTH].rstrip("-") or "org"


async def create_organization(conn: Connection, body: OrganizationCreate) -> Organization:
    base = slugify(body.name)
    for attempt in range(SLUG_ATTEMPTS):
        slug = base if attempt == 0 else f"{base}-{secrets.token_hex(3)}"
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
            return Organization.model_validate(row)
    raise Conflict("Could not find a free slug for this name; try another name.")


async def get_organization(conn: Connection, org_id: UUID) -> Organization:
    row = await repository.get_organization(conn, org_id)
    if row is None:
        raise NotFound(NO_SUCH_ORGANIZATION)
    return Organization.model_validate(row)


async def update_organization(
    conn: Connection, org_id: UUID, body: OrganizationUpdate
) -> Organization:
    await require_admin(conn, org_id)
    if "is_active" in body.model_fields_set and not await access.is_super_admin(conn):
        raise Forbidden("Only platform admins may activate or deactivate an organization.")
    if body.settings is not None and body.settings.require_mfa:
        account = await auth_service.my_account(conn)
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
    row = await repository.update_organization(conn, org_id, columns, location)
    if row is None:
        raise Forbidden(ADMINS_ONLY)
    return Organization.model_validate(row)


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
) -> Page[OrganizationListItem]:
    near = search.near_location
    nearby = None
    if near is not None:
        box = None
        if search.radius_km is not None:
            box = bounding_box(near.lat, near.lng, search.radius_km)
        nearby = Nearby(lat=near.lat, lng=near.lng, radius_km=search.radius_km, box=box)
    after = cursor_key(search.cursor, number_key if nearby else text_key)
    rows = await repository.search_organizations(
        conn,
        text=text_query(search.q) if search.q else None,
        kind=search.kind,
        nearby=nearby,
        after=after,
        limit=search.limit + 1,
    )
    key = ["distance_km" if nearby else "name", "id"]
    return model_page(OrganizationListItem, rows, search.limit, key)


# ---------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------
async def list_members(
    conn: Connection, org_id: UUID, *, limit: int, cursor: str | None
) -> Page[Member]:
    after = cursor_key(cursor, text_key)
    rows = await repository.list_members(conn, org_id, after=after, limit=limit + 1)
    if not rows:
        # Only an empty page costs the check: members always see at least themselves.
        access.require(
            await access.standing(conn, org_id),
            "staff",
            forbidden="Only the organization's members may see its members.",
        )
    return model_page(Member, rows, limit, ["full_name", "user_id"])


async def change_member_role(
    conn: Connection, org_id: UUID, user_id: UUID, body: MemberRoleChange
) -> Membership:
    await require_admin(conn, org_id)
    row = await repository.update_member_role(conn, org_id, user_id, body.role)
    if row is None:
        raise NotFound("No such member.")
    return Membership.model_validate(row)


async def remove_member(conn: Connection, org_id: UUID, user_id: UUID) -> None:
    await require_admin(conn, org_id)
    removed = await repository.delete_member(conn, org_id, user_id)
    if not removed:
        raise NotFound("No such member.")


# ---------------------------------------------------------------------------------------
# Invitations
# ---------------------------------------------------------------------------------------
async def invite(conn: Connection, org_id: UUID, body: InvitationCreate) -> InvitationSent:
    """Nothing in the answer or the work done depends on whether the address has an account:
    the link goes out either way, and an invitee without one signs up to accept."""
    await require_admin(conn, org_id)
    token = INVITATION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await repository.replace_invitation(
        conn,
        org_id,
        email=body.email,
        role=body.role,
        token_hash=hash_secret(token),
        ttl=INVITATION_TTL,
    )
    await enqueue_invitation_mail(conn, row["invitation_id"], org_id, token)
    return InvitationSent.model_validate(row)


async def list_invitations(
    conn: Connection, org_id: UUID, *, limit: int, cursor: str | None
) -> Page[Invitation]:
    await require_admin(conn, org_id, "Only the organization's admins may see its invitations.")
    after = cursor_key(cursor, timestamp_key)
    rows = await repository.list_invitations(conn, org_id, after=after, limit=limit + 1)
    return model_page(Invitation, rows, limit, ["created_at", "invitation_id"])


async def my_invitations(conn: Connection, *, limit: int, cursor: str | None) -> Page[Invitation]:
    after = cursor_key(cursor, timestamp_key)
    rows = await repository.list_invitations(conn, None, after=after, limit=limit + 1)
    return model_page(Invitation, rows, limit, ["created_at", "invitation_id"])


async def accept_invitation(conn: Connection, invitation_id: UUID) -> Membership:
    """The address is compared, not yet proven: until sign-up verifies addresses, whoever
    signs up with an invited address may accept for it."""
    row = await repository.accept_invitation(conn, invitation_id)
    if row is None:
        raise NotFound("No such invitation.")
    return Membership.model_validate(row)


async def delete_invitation(conn: Connection, invitation_id: UUID) -> None:
    """An admin revokes, the invitee declines: either may see it, and either may remove it."""
    if not await repository.delete_invitation(conn, invitation_id):
        raise NotFound("No such invitation.")
