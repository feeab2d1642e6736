"""Rules of bookable services, their working hours and closures. No SQL here and no commit:
the request owns the transaction, and row-level security decides what the caller sees."""

from __future__ import annotations

import json
from uuid import UUID

from slotease.db.database import Connection, Reader
from slotease.kit.pagination import (
    Page,
    cursor_key,
    encode_cursor,
    model_page,
    text_key,
    timestamp_key,
)
from slotease.kit.problems import Forbidden, NotFound
from slotease.organizations import access
from slotease.organizations.access import ADMINS_ONLY, Standing, require_admin
from slotease.services import repository
from slotease.services.schemas import (
    Closure,
    ClosureCreate,
    ClosureRange,
    Service,
    ServiceCreate,
    ServiceUpdate,
    WorkingHours,
)


async def _require_service_admin(conn: Connection, service_id: UUID) -> Standing:
    return access.require(
        await access.service_standing(conn, service_id), "admin", missing="No such service."
    )


# ---------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------
def _week(hours: list[WorkingHours]) -> list[tuple[int, str, str]]:
    return [(h.weekday, h.start, h.end) for h in hours]


async def get_service(conn: Connection, service_id: UUID) -> Service:
    row = await repository.get_service(conn, service_id)
    if row is None:
        raise NotFound("No such service.")
    return Service.model_validate(row)


async def create_service(conn: Connection, org_id: UUID, body: ServiceCreate) -> Service:
    await require_admin(conn, org_id)
    service_id = await repository.insert_service(conn, org_id, body.columns())
    await repository.replace_working_hours(conn, org_id, service_id, _week(body.working_hours))
    return await get_service(conn, service_id)


async def list_services(read: Reader, org_id: UUID, *, limit: int, cursor: str | None) -> bytes:
    """The JSON of a `Page[Service]`, as PostgreSQL built it: a hot public read answers it
    without reading it into models and writing it out again."""
    after = cursor_key(cursor, text_key)
    page = await repository.active_services_page(read, org_id, after=after, limit=limit)
    if page is None:
        raise NotFound("No such organization.")
    next_cursor = (
        None if page["last_id"] is None else encode_cursor([page["last_name"], page["last_id"]])
    )
    return b'{"items":%s,"next_cursor":%s}' % (
        page["items"].encode(),
        json.dumps(next_cursor).encode(),
    )


async def update_service(conn: Connection, service_id: UUID, body: ServiceUpdate) -> Service:
    standing = await _require_service_admin(conn, service_id)
    if not await repository.update_service(conn, service_id, body.columns()):
        raise Forbidden(ADMINS_ONLY)
    if body.working_hours is not None:
        await repository.replace_working_hours(
            conn, standing.organization_id, service_id, _week(body.working_hours)
        )
    return await get_service(conn, service_id)


# ---------------------------------------------------------------------------------------
# Closures
# ---------------------------------------------------------------------------------------
async def add_closure(conn: Connection, service_id: UUID, body: ClosureCreate) -> Closure:
    standing = await _require_service_admin(conn, service_id)
    row = await repository.insert_closure(
        conn,
        standing.organization_id,
        service_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
    )
    return Closure.model_validate(row)


async def list_closures(conn: Connection, service_id: UUID, window: ClosureRange) -> Page[Closure]:
    found = await access.service_standing(conn, service_id)
    if found is None:
        raise NotFound("No such service.")
    after = cursor_key(window.cursor, timestamp_key)
    rows = await repository.list_closures(
        conn,
        service_id,
        timezone=found.timezone,
        first_day=window.from_,
        last_day=window.to,
        after=after,
        limit=window.limit + 1,
    )
    return model_page(Closure, rows, window.limit, ["starts_at", "id"])


async def remove_closure(conn: Connection, service_id: UUID, closure_id: UUID) -> None:
    await _require_service_admin(conn, service_id)
    removed = await repository.delete_closure(conn, service_id, closure_id)
    if not removed:
        raise NotFound("No such closure.")
