"""HTTP routes of bookable services, their working hours and closures."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from slotease.auth.deps import DbDep, ReadDbDep, ReadOnceDep, SignedIn
from slotease.kit.openapi import ADMIN_ONLY, NOT_FOUND
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.services import service
from slotease.services.schemas import (
    Closure,
    ClosureCreate,
    ClosureRange,
    Service,
    ServiceCreate,
    ServiceUpdate,
)

router = APIRouter(tags=["organizations"])


@router.post(
    "/organizations/{org_id}/services", status_code=status.HTTP_201_CREATED, responses=ADMIN_ONLY
)
async def create_service(org_id: UUID, body: ServiceCreate, _: SignedIn, conn: DbDep) -> Service:
    return await service.create_service(conn, org_id, body)


@router.get("/organizations/{org_id}/services", response_model=Page[Service], responses=NOT_FOUND)
async def list_services(
    org_id: UUID, read: ReadOnceDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Response:
    """The organization's active services with their working hours, by name."""
    body = await service.list_services(read, org_id, limit=limit, cursor=cursor)
    return Response(body, media_type="application/json")


@router.get("/services/{service_id}", responses=NOT_FOUND)
async def get_service(service_id: UUID, conn: ReadDbDep) -> Service:
    return await service.get_service(conn, service_id)


@router.patch("/services/{service_id}", responses=ADMIN_ONLY)
async def update_service(
    service_id: UUID, body: ServiceUpdate, _: SignedIn, conn: DbDep
) -> Service:
    """Change any field; `working_hours`, when given, replaces the whole week."""
    return await service.update_service(conn, service_id, body)


@router.post(
    "/services/{service_id}/closures", status_code=status.HTTP_201_CREATED, responses=ADMIN_ONLY
)
async def add_closure(service_id: UUID, body: ClosureCreate, _: SignedIn, conn: DbDep) -> Closure:
    """Close the service for a period: no slot is offered inside it."""
    return await service.add_closure(conn, service_id, body)


@router.get("/services/{service_id}/closures", responses=NOT_FOUND)
async def list_closures(
    service_id: UUID, window: Annotated[ClosureRange, Query()], conn: DbDep
) -> Page[Closure]:
    """Closures overlapping the days `from`..`to` (inclusive, in the organization's timezone)."""
    return await service.list_closures(conn, service_id, window)


@router.delete(
    "/services/{service_id}/closures/{closure_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ADMIN_ONLY,
)
async def remove_closure(service_id: UUID, closure_id: UUID, _: SignedIn, conn: DbDep) -> Response:
    await service.remove_closure(conn, service_id, closure_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
