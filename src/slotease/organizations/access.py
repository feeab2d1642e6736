"""The caller's standing in an organization, and the answer when it falls short.

Row-level security authorizes every statement; this module only chooses the answer's shape
before a write or a member-only read, following the contract: what the caller may not see is
a 404, what it sees but may not do is a 403. Every feature asks here, never the `app.is_org_*`
helpers itself, so that the rule has one wording.

Two kinds of things hang off an organization:
- managing the organization (its details, services, queues, members, webhooks, API keys):
  the directory shows the organization to everyone, so an outsider refused is a 403
  (`require`);
- what only its people see (figures, its customers, sending to them): to an outsider the
  organization might as well not exist, so that is a 404 (`require(private=True)`).

This is the one module outside the repositories that runs SQL: the standing is a single
statement shared by every feature, and keeping it next to the rule keeps both in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from psycopg import sql

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_one, fetch_row
from slotease.kit.problems import Forbidden, NotFound

Role = Literal["staff", "admin"]

NO_SUCH_ORGANIZATION = "No such organization."
ADMINS_ONLY = "Only the organization's admins may do this."

# Members are staff or admins; super admins count as admins of every organization
# (app.is_org_member and app.is_org_admin say so).
_STANDING = sql.SQL(
    "o.id as organization_id, o.timezone, app.is_org_member(o.id) as is_member,"
    " app.is_org_admin(o.id) as is_admin"
)


@dataclass(frozen=True)
class Standing:
    organization_id: UUID
    timezone: str
    role: Role | None

    def has(self, role: Role) -> bool:
        return self.role == "admin" or self.role == role


def _standing(row: Row | None) -> Standing | None:
    if row is None:
        return None
    role: Role | None = "admin" if row["is_admin"] else "staff" if row["is_member"] else None
    return Standing(organization_id=row["organization_id"], timezone=row["timezone"], role=role)


async def standing(conn: Connection, org_id: UUID) -> Standing | None:
    """The caller's standing in the organization; None when it cannot see the organization."""
    query = sql.SQL("select {} from public.organizations o where o.id = %(id)s").format(_STANDING)
    return _standing(await fetch_one(conn, query, {"id": org_id}))


async def service_standing(conn: Connection, service_id: UUID) -> Standing | None:
    """The caller's standing in the organization of a service; None when it cannot see the
    service."""
    query = sql.SQL(
        "select {} from public.services s join public.organizations o on o.id = s.organization_id"
        " where s.id = %(id)s"
    ).format(_STANDING)
    return _standing(await fetch_one(conn, query, {"id": service_id}))


async def is_super_admin(conn: Connection) -> bool:
    row = await fetch_row(conn, "select app.is_super_admin() as yes")
    return bool(row["yes"])


def require(
    found: Standing | None,
    role: Role,
    *,
    private: bool = False,
    missing: str = NO_SUCH_ORGANIZATION,
    forbidden: str = ADMINS_ONLY,
) -> Standing:
    """`found` when it has `role`. Otherwise 404 (`missing`) when the caller cannot see the
    thing (the organization, or with `private` anything of it unless a member), else 403
    (`forbidden`)."""
    if found is None or (private and found.role is None):
        raise NotFound(missing)
    if not found.has(role):
        raise Forbidden(forbidden)
    return found


async def require_admin(
    conn: Connection, org_id: UUID, forbidden: str = ADMINS_ONLY, *, private: bool = False
) -> Standing:
    """The admin-only actions of every feature check through here; the write that follows
    still goes through RLS."""
    return require(await standing(conn, org_id), "admin", private=private, forbidden=forbidden)
