"""HTTP routes of the personal-data rights and of the audit trail."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from fastapi.encoders import jsonable_encoder

from slotease.auth.deps import ClientAddressDep, ContextDep, CurrentUser, DbDep
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.privacy import service
from slotease.privacy.schemas import (
    AuditEntry,
    ConsentEvent,
    Consents,
    ConsentsUpdate,
    ErasureAccepted,
    ErasureRequest,
)

router = APIRouter(tags=["personal data"])

# Consent changes made through the API; the operator's commands record their own source.
API_SOURCE = "api"


@router.get(
    "/me/export",
    response_class=Response,
    responses={
        200: {
            "description": "Every record about the caller, as a JSON attachment.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def export_my_data(user: CurrentUser, db: DbDep) -> Response:
    assert user.user_id is not None
    records = await service.export(db, user.user_id)
    return Response(
        json.dumps(jsonable_encoder(records), ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="slotease-export-{user.user_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.delete(
    "/me",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        403: {"description": "The password (or, with MFA on, the code) is incorrect"},
        409: {"description": "The caller is the only admin of an organization"},
        429: {"description": "Too many wrong passwords for the account or the address"},
    },
)
async def erase_my_account(
    body: ErasureRequest,
    user: CurrentUser,
    conn: DbDep,
    context: ContextDep,
    address: ClientAddressDep,
) -> ErasureAccepted:
    return await service.request_erasure(conn, context, user, body, address)


@router.get("/me/consents")
async def get_consents(user: CurrentUser, db: DbDep) -> Consents:
    assert user.user_id is not None
    return await service.get_consents(db, user.user_id)


@router.put("/me/consents")
async def put_consents(body: ConsentsUpdate, user: CurrentUser, db: DbDep) -> Consents:
    assert user.user_id is not None
    return await service.put_consents(db, user.user_id, body, API_SOURCE)


@router.get("/me/consents/history")
async def consent_history(user: CurrentUser, db: DbDep) -> list[ConsentEvent]:
    assert user.user_id is not None
    return await service.consent_history(db, user.user_id)


@router.get(
    "/organizations/{org_id}/audit",
    responses={403: {"description": "Only the organization's admins"}},
)
async def audit_trail(
    org_id: UUID,
    _: CurrentUser,
    db: DbDep,
    since: Annotated[datetime | None, Query(alias="from", description="Inclusive.")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Inclusive.")] = None,
    table: Annotated[str | None, Query(max_length=63, description="A table name.")] = None,
    actor_id: UUID | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[AuditEntry]:
    return await service.audit_trail(
        db, org_id, since=since, until=until, table=table, actor_id=actor_id, cursor=cursor,
        limit=limit,
    )  # fmt: skip
