"""HTTP routes of sign-up, tokens, the current user and API keys."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Response, status
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
    MfaCodeBody,
    MfaEnrollment,
    MfaGrant,
    PasswordChange,
    PasswordGrant,
    PasswordReset,
    RecoveryRequest,
    SessionOut,
    SignupPending,
    SignupRequest,
    TokenRequest,
    VerificationRequest,
)
from slotease.kit.openapi import SIGNED_IN
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.kit.problems import Problem, Unauthorized

router = APIRouter(tags=["auth"])

# Supabase mode (auth.supabase): the answer of every account route SlotEase leaves to
# Supabase Auth, and of those it forwards when the project's URL and anon key are not set.
_IN_SUPABASE: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "Supabase mode: accounts are managed by Supabase Auth"
        " (`.../accounts-in-supabase-auth`)"
    }
}


async def _own_accounts(context: ContextDep) -> None:
    service.require_own_accounts(context)


OWN_ACCOUNTS = [Depends(_own_accounts)]
# The routes forwarded to Supabase Auth when the project's URL and anon key are set.
_FORWARDED: dict[int | str, dict[str, Any]] = {
    **_IN_SUPABASE,
    502: {"description": "Supabase mode: Supabase Auth did not answer"},
}


@router.post(
    "/auth/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionOut,
    responses={
        **_FORWARDED,
        202: {
            "model": SignupPending,
            "description": "Supabase mode, addresses confirmed first: the account exists and"
            " its session starts from the link Supabase Auth sent",
        },
        409: {"description": "The email is taken"},
    },
)
async def sign_up(
    body: SignupRequest, conn: ServiceDbDep, context: ContextDep
) -> SessionOut | JSONResponse:
    outcome = await service.sign_up(conn, context, body)
    if isinstance(outcome, SignupPending):
        return JSONResponse(outcome.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    return outcome


@router.post(
    "/auth/token",
    response_model=SessionOut,
    responses={
        401: {
            "description": "Bad credentials; or, with MFA on, the problem of type"
            " `.../mfa-required` whose `mfa_token` the `mfa` grant takes with a code"
        },
        429: {"description": "Too many failed sign-ins for the account or the address"},
        **_FORWARDED,
    },
)
async def token(
    body: Annotated[TokenRequest, Body()],
    conn: ServiceDbDep,
    context: ContextDep,
    address: ClientAddressDep,
) -> SessionOut | JSONResponse:
    # Refusals are answered rather than raised, so that the transaction commits what they
    # record: a family revocation, an audit event, a failed code counted.
    outcome: SessionOut | Problem | service.RefreshRejected
    if isinstance(body, PasswordGrant):
        outcome = await service.sign_in_with_password(conn, context, body, address)
    elif isinstance(body, MfaGrant):
        outcome = await service.sign_in_with_mfa(conn, context, body, address)
    else:
        outcome = await service.refresh(conn, context, body.refresh_token)
    if isinstance(outcome, service.RefreshRejected):
        return Unauthorized(outcome.detail).response()
    if isinstance(outcome, Problem):
        return outcome.response()
    return outcome


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_IN_SUPABASE,
    dependencies=OWN_ACCOUNTS,
)
async def log_out(body: LogoutRequest, conn: ServiceDbDep) -> Response:
    await service.log_out(conn, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_TOKEN_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"description": "The token was used, replaced or has expired"},
    **_IN_SUPABASE,
}
_CODE_REFUSED: dict[int | str, dict[str, Any]] = {
    **SIGNED_IN,
    403: {"description": "The code is not valid; in Supabase mode, MFA is Supabase Auth's"},
    409: {"description": "Multi-factor sign-in is not in the state this step needs"},
}


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **SIGNED_IN,
        403: {
            "description": "The current password is incorrect; in Supabase mode, passwords"
            " are Supabase Auth's"
        },
        429: {"description": "Too many wrong passwords for the account or the address"},
    },
    dependencies=OWN_ACCOUNTS,
)
async def change_password(
    body: PasswordChange,
    principal: CurrentUser,
    conn: DbDep,
    context: ContextDep,
    address: ClientAddressDep,
) -> Response:
    await service.change_password(conn, context, principal, body, address)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=_FORWARDED,
)
async def recover(body: RecoveryRequest, conn: ServiceDbDep, context: ContextDep) -> Response:
    await service.request_recovery(conn, context, body.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/auth/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_TOKEN_REFUSED,
    dependencies=OWN_ACCOUNTS,
)
async def reset_password(body: PasswordReset, conn: ServiceDbDep) -> Response:
    await service.reset_password(conn, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/verify",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_TOKEN_REFUSED,
    dependencies=OWN_ACCOUNTS,
)
async def verify_email(body: VerificationRequest, conn: ServiceDbDep) -> Response:
    await service.verify_email(conn, body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/verify/resend",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**SIGNED_IN, **_IN_SUPABASE},
    response_class=Response,
    dependencies=OWN_ACCOUNTS,
)
async def resend_verification(_: CurrentUser, conn: DbDep) -> Response:
    await service.resend_verification(conn)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/me/mfa",
    status_code=status.HTTP_201_CREATED,
    responses={
        **SIGNED_IN,
        **_IN_SUPABASE,
        409: {"description": "Multi-factor sign-in is already on"},
    },
    dependencies=OWN_ACCOUNTS,
)
async def enroll_mfa(principal: CurrentUser, conn: DbDep) -> MfaEnrollment:
    return await service.enroll_mfa(conn, principal)


@router.post(
    "/me/mfa/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_CODE_REFUSED,
    dependencies=OWN_ACCOUNTS,
)
async def confirm_mfa(body: MfaCodeBody, _: CurrentUser, conn: DbDep) -> Response:
    await service.confirm_mfa(conn, body.code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/me/mfa",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_CODE_REFUSED,
    dependencies=OWN_ACCOUNTS,
)
async def disable_mfa(body: MfaCodeBody, _: CurrentUser, conn: DbDep) -> Response:
    await service.disable_mfa(conn, body.code)
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
