"""HTTP routes of sign-up, tokens, the current user and API keys."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import JSONResponse

from slotease.auth import service
from slotease.auth.deps import (
    ClientAddressDep,
    ContextDep,
    CurrentUser,
    DbDep,
    ServiceDbDep,
    SignedIn,
)
from slotease.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LogoutRequest,
    MeOut,
    MeUpdate,
    PasswordGrant,
    SessionOut,
    SignupRequest,
    TokenRequest,
)
from slotease.kit.openapi import SIGNED_IN
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.kit.problems import Unauthorized

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/signup",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The email is taken"}},
)
async def sign_up(body: SignupRequest, conn: ServiceDbDep, context: ContextDep) -> SessionOut:
    return await service.sign_up(conn, context, body)


@router.post(
    "/auth/token",
    response_model=SessionOut,
    responses={
        **SIGNED_IN,
        429: {"description": "Too many failed sign-ins for the account or the address"},
    },
)
async def token(
    body: Annotated[TokenRequest, Body()],
    conn: ServiceDbDep,
    context: ContextDep,
    address: ClientAddressDep,
) -> SessionOut | JSONResponse:
    if isinstance(body, PasswordGrant):
        return await service.sign_in_with_password(conn, context, body, address)
    outcome = await service.refresh(conn, context, body.refresh_token)
    if isinstance(outcome, service.RefreshRejected):
        # Answered rather than raised, so the transaction commits a family revocation.
        return Unauthorized(outcome.detail).response()
    return outcome


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def log_out(body: LogoutRequest, conn: ServiceDbDep) -> Response:
    await service.log_out(conn, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", responses=SIGNED_IN)
async def get_me(principal: CurrentUser, conn: DbDep) -> MeOut:
    return await service.get_me(conn, principal)


@router.patch("/me", responses=SIGNED_IN)
async def update_me(body: MeUpdate, principal: CurrentUser, conn: DbDep) -> MeOut:
    return await service.update_me(conn, principal, body)


@router.post(
    "/organizations/{org_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    responses=SIGNED_IN,
)
async def create_api_key(
    org_id: UUID, body: ApiKeyCreate, _: SignedIn, conn: DbDep
) -> ApiKeyCreated:
    return await service.create_api_key(conn, org_id, body)


@router.get(
    "/organizations/{org_id}/api-keys",
    responses={**SIGNED_IN, 403: {"description": "Only the organization's admins"}},
)
async def list_api_keys(
    org_id: UUID,
    _: SignedIn,
    conn: DbDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[ApiKeyOut]:
    return await service.list_api_keys(conn, org_id, cursor=cursor, limit=limit)


@router.delete(
    "/organizations/{org_id}/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=SIGNED_IN,
)
async def revoke_api_key(org_id: UUID, key_id: UUID, _: SignedIn, conn: DbDep) -> Response:
    await service.revoke_api_key(conn, org_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/organizations/{org_id}/api-keys/{key_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    responses=SIGNED_IN,
)
async def rotate_api_key(
    org_id: UUID, key_id: UUID, _: SignedIn, conn: DbDep, context: ContextDep
) -> ApiKeyCreated:
    return await service.rotate_api_key(conn, context, org_id, key_id)
