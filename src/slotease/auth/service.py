"""The rules of sign-up, sign-in, refresh-token rotation, the current user and API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from anyio import to_thread

from slotease.auth import repository
from slotease.auth.passwords import hash_password, needs_rehash, verify_password
from slotease.auth.principal import API_KEY_PREFIX, Principal
from slotease.auth.schemas import (
    AccessToken,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    Membership,
    MeOut,
    MeUpdate,
    PasswordGrant,
    SessionOut,
    SessionUser,
    SignupRequest,
)
from slotease.auth.tokens import mint_access_token
from slotease.context import AppContext
from slotease.db.database import SERVICE, Connection, Database
from slotease.kit.pagination import Page, decode_cursor, page_of
from slotease.kit.problems import Conflict, NotFound, Unauthorized
from slotease.kit.secrets import hash_secret, new_secret
from slotease.organizations.access import require_admin

REFRESH_TOKEN_PREFIX = "rt_"
API_KEY_VISIBLE_CHARS = 12
_BAD_CREDENTIALS = "The email or password is incorrect."


@dataclass(frozen=True)
class RefreshRejected:
    """A refresh that must answer 401 while its side effects (revoking a family on reuse) are
    kept: raising would roll the request's transaction back and undo the revocation."""

    detail: str


# ---------------------------------------------------------------------------------------
# Users and sessions.
# ---------------------------------------------------------------------------------------
async def register_user(
    conn: Connection, *, email: str, password: str, full_name: str
) -> dict[str, Any]:
    """Create the auth user and their profile; shared by sign-up and `slotease users create`."""
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    password_hash = await to_thread.run_sync(hash_password, password)
    user = await repository.sign_up(
        conn, email=email, password_hash=password_hash, full_name=full_name
    )
    if user is None:
        raise Conflict("An account with this email already exists.")
    return {**user, "full_name": full_name}


async def make_platform_admin(conn: Connection, user_id: UUID) -> None:
    await repository.add_platform_admin(conn, user_id)


async def sign_up(conn: Connection, context: AppContext, body: SignupRequest) -> SessionOut:
    user = await register_user(
        conn, email=body.email, password=body.password, full_name=body.full_name
    )
    await repository.act_as_user(conn, user["id"], user["email"])
    if body.phone is not None:
        await repository.upsert_profile(
            conn, user_id=user["id"], full_name=None, phone=body.phone, set_phone=True
        )
    return await _start_session(conn, context, user, family_id=uuid.uuid4())


async def sign_in_with_password(
    conn: Connection, context: AppContext, grant: PasswordGrant, client_address: str
) -> SessionOut:
    # Before the password is looked at: a locked account refuses the right password too.
    attempt = await context.login_throttle.begin(grant.email, client_address)
    user = await repository.find_user_by_email(conn, grant.email)
    stored_hash = user["encrypted_password"] if user else None
    # An unknown email is verified against a dummy hash, so both failures take as long.
    verified = await to_thread.run_sync(verify_password, stored_hash, grant.password)
    if user is None or stored_hash is None or not verified:
        raise Unauthorized(_BAD_CREDENTIALS)
    await context.login_throttle.succeeded(attempt)
    new_hash = None
    if needs_rehash(stored_hash):
        new_hash = await to_thread.run_sync(hash_password, grant.password)
    await repository.act_as_user(conn, user["id"], user["email"])
    await repository.record_sign_in(conn, new_hash)
    return await _start_session(conn, context, user, family_id=uuid.uuid4())


async def refresh(
    conn: Connection, context: AppContext, refresh_token: str
) -> SessionOut | RefreshRejected:
    """Spend a refresh token for a new session in the same family. A spent or revoked token
    presented again means it leaked: the whole family is revoked."""
    token = await repository.spend_refresh_token(conn, hash_secret(refresh_token))
    if token["outcome"] == "unknown":
        return RefreshRejected("The refresh token is not valid.")
    if token["outcome"] == "reused":
        return RefreshRejected("The refresh token was already used; the session is revoked.")
    if token["outcome"] == "expired":
        return RefreshRejected("The refresh token has expired.")
    user = {"id": token["user_id"], "email": token["email"], "full_name": token["full_name"]}
    await repository.act_as_user(conn, user["id"], user["email"])
    return await _start_session(conn, context, user, family_id=token["family_id"])


async def log_out(conn: Connection, refresh_token: str) -> None:
    await repository.revoke_family_of_token(conn, hash_secret(refresh_token))


async def _start_session(
    conn: Connection, context: AppContext, user: dict[str, Any], *, family_id: UUID
) -> SessionOut:
    """The session of the user the transaction now acts as (`repository.act_as_user`)."""
    refresh_token = new_secret(REFRESH_TOKEN_PREFIX)
    await repository.insert_refresh_token(
        conn,
        family_id=family_id,
        token_hash=hash_secret(refresh_token),
        ttl_days=context.settings.refresh_token_ttl_days,
    )
    access = _access_token(context, user["id"], user["email"])
    return SessionOut(
        user=SessionUser(id=user["id"], email=user["email"], full_name=user["full_name"]),
        access_token=access.access_token,
        refresh_token=refresh_token,
        expires_in=access.expires_in,
    )


def _access_token(context: AppContext, user_id: UUID, email: str) -> AccessToken:
    ttl = context.settings.access_token_ttl_seconds
    return AccessToken(
        access_token=mint_access_token(
            context.jwt_secret,
            user_id=user_id,
            email=email,
            ttl_seconds=ttl,
            issuer=context.settings.jwt_issuer,
        ),
        expires_in=ttl,
    )


async def session_access_token(
    conn: Connection, context: AppContext, refresh_token: str
) -> AccessToken | None:
    """An access token for the session of `refresh_token`, which stays unspent; None when the
    session is over (unknown, spent by a replay, revoked by logout, or expired).

    For the web pages' session cookie: a page (or several tabs) may ask concurrently, and
    rotating the token would make the second request look like a replay and revoke the whole
    family. The cookie is HttpOnly, SameSite=Lax, and every request that uses it carries a
    CSRF token, so it stands in for a classic server session."""
    token = await repository.session_user(conn, hash_secret(refresh_token))
    if token is None:
        return None
    return _access_token(context, token["user_id"], token["email"])


# ---------------------------------------------------------------------------------------
# The current user.
# ---------------------------------------------------------------------------------------
async def get_me(conn: Connection, principal: Principal) -> MeOut:
    assert principal.user_id is not None
    profile = await repository.get_profile(conn, principal.user_id)
    memberships = await repository.list_memberships(conn, principal.user_id)
    return MeOut(
        id=principal.user_id,
        email=principal.email,
        full_name=profile["full_name"],
        phone=profile["phone"],
        is_super_admin=profile["is_super_admin"],
        memberships=[Membership(**row) for row in memberships],
    )


async def update_me(conn: Connection, principal: Principal, body: MeUpdate) -> MeOut:
    assert principal.user_id is not None
    written = await repository.upsert_profile(
        conn,
        user_id=principal.user_id,
        full_name=body.full_name,
        phone=body.phone,
        set_phone="phone" in body.model_fields_set,
    )
    if written is None:
        raise Unauthorized("The signed-in user no longer exists.")
    return await get_me(conn, principal)


# ---------------------------------------------------------------------------------------
# API keys.
# ---------------------------------------------------------------------------------------
async def _require_org_admin(conn: Connection, organization_id: UUID) -> None:
    await require_admin(
        conn, organization_id, "Only the organization's admins manage its API keys."
    )


async def _issue_api_key(
    conn: Connection, organization_id: UUID, *, name: str, role: str
) -> ApiKeyCreated:
    key = new_secret(API_KEY_PREFIX)
    row = await repository.insert_api_key(
        conn,
        organization_id=organization_id,
        name=name,
        role=role,
        prefix=key[:API_KEY_VISIBLE_CHARS],
        key_hash=hash_secret(key),
    )
    return ApiKeyCreated(**row, key=key)


async def create_api_key(
    conn: Connection, organization_id: UUID, body: ApiKeyCreate
) -> ApiKeyCreated:
    await _require_org_admin(conn, organization_id)
    return await _issue_api_key(conn, organization_id, name=body.name, role=body.role)


async def list_api_keys(
    conn: Connection, organization_id: UUID, *, cursor: str | None, limit: int
) -> Page[ApiKeyOut]:
    await _require_org_admin(conn, organization_id)
    rows = await repository.list_api_keys(
        conn, organization_id, after=decode_cursor(cursor, 2), limit=limit
    )
    items, next_cursor = page_of(rows, limit, key=["created_at", "id"])
    return Page(items=[ApiKeyOut(**row) for row in items], next_cursor=next_cursor)


async def revoke_api_key(conn: Connection, organization_id: UUID, key_id: UUID) -> None:
    await _require_org_admin(conn, organization_id)
    if not await repository.revoke_api_key(conn, organization_id, key_id):
        raise NotFound("No such API key.")


async def rotate_api_key(
    conn: Connection, context: AppContext, organization_id: UUID, key_id: UUID
) -> ApiKeyCreated:
    """A new key with the same name and role; the old one keeps working for the grace period
    so that deployments can switch over without downtime."""
    await _require_org_admin(conn, organization_id)
    old = await repository.lock_api_key(conn, organization_id, key_id)
    if old is None:
        raise NotFound("No such API key.")
    if old["expires_at"] is not None:
        raise Conflict("This API key was already rotated.")
    await repository.expire_api_key(
        conn,
        organization_id,
        key_id,
        grace_minutes=context.settings.api_key_rotation_grace_minutes,
    )
    return await _issue_api_key(conn, organization_id, name=old["name"], role=old["role"])


async def purge_expired_refresh_tokens(db: Database) -> int:
    async with db.transaction(SERVICE) as conn:
        return await repository.delete_expired_refresh_families(conn)
