"""The rules of sign-up, sign-in, refresh-token rotation, the current user and API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from anyio import to_thread
from fastapi.responses import JSONResponse

from slotease.auth import mfa, repository
from slotease.auth.account_mail import RESET_TASK, VERIFICATION_TASK, enqueue_account_mail
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
    MfaEnrollment,
    MfaGrant,
    PasswordChange,
    PasswordGrant,
    PasswordReset,
    SessionOut,
    SessionUser,
    SignupPending,
    SignupRequest,
)
from slotease.auth.supabase import (
    Accounts,
    AccountsInSupabaseAuth,
    SupabaseAuth,
    SupabaseAuthRefused,
    session_of,
    signup_outcome,
)
from slotease.auth.tokens import mint_access_token
from slotease.config import Settings
from slotease.context import AppContext
from slotease.db.database import ANONYMOUS, SERVICE, Connection, Database
from slotease.db.queries import Row
from slotease.jobs.queues import INTERACTIVE
from slotease.kit.pagination import Page, decode_cursor, page_of
from slotease.kit.problems import (
    Conflict,
    Forbidden,
    NotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
    problem_response,
)
from slotease.kit.secrets import hash_secret, new_secret
from slotease.organizations.access import require_admin

REFRESH_TOKEN_PREFIX = "rt_"
ACCOUNT_TOKEN_PREFIX = "at_"
API_KEY_VISIBLE_CHARS = 12
# api.md, "Accounts": a recovery link holds 30 minutes.
RESET_TTL_MINUTES = 30
VERIFICATION_TTL_HOURS = 72
# The step between password and code: long enough to open an authenticator app, and a few
# wrong codes end it, so that guessing six digits needs the password again and again.
MFA_STEP_TTL_MINUTES = 5
MFA_STEP_FAILURES = 5
_BAD_CREDENTIALS = "The email or password is incorrect."


class MfaRequired(Unauthorized):
    """The password was right; the sign-in continues with a code and this step's token."""

    slug = "mfa-required"

    def __init__(self, mfa_token: str) -> None:
        super().__init__("Enter the code of your authenticator app, or a recovery code.")
        self.mfa_token = mfa_token

    def response(self) -> JSONResponse:
        return problem_response(
            self.status,
            self.detail,
            slug=self.slug,
            headers=self.headers,
            mfa_token=self.mfa_token,
        )


@dataclass(frozen=True)
class RefreshRejected:
    """A refresh that must answer 401 while its side effects (revoking a family on reuse) are
    kept: raising would roll the request's transaction back and undo the revocation."""

    detail: str


# ---------------------------------------------------------------------------------------
# Who owns the accounts (auth.supabase).
# ---------------------------------------------------------------------------------------
async def accounts_mode(db: Database, settings: Settings, *, as_service: bool) -> Accounts:
    """SLOTEASE_AUTH, or with `auto` the database's answer: Supabase Auth owns the accounts
    where auth.users belongs to another role than SlotEase's schema. `as_service` for the
    worker's database, whose login role acts only as service_role."""
    if settings.auth_mode != "auto":
        return settings.auth_mode
    async with db.transaction(SERVICE if as_service else ANONYMOUS) as conn:
        return await accounts_of(conn, settings)


async def accounts_of(conn: Connection, settings: Settings) -> Accounts:
    """`accounts_mode` inside a transaction of one's own."""
    if settings.auth_mode != "auto":
        return settings.auth_mode
    return "supabase" if await repository.accounts_in_supabase(conn) else "standalone"


def require_own_accounts(context: AppContext) -> None:
    """For the account operations SlotEase never forwards (reset and verification links,
    MFA, password change, logout): Supabase Auth does them where it owns the accounts."""
    if context.accounts == "supabase":
        raise AccountsInSupabaseAuth(context.settings)


async def delete_supabase_account(db: Database, settings: Settings, user_id: UUID) -> None:
    """Erasure's last step where Supabase Auth owns the account: its admin API erases it
    (SlotEase's own erasure leaves auth.users alone there); nothing to do elsewhere. `db` is
    the worker's."""
    if await accounts_mode(db, settings, as_service=True) == "supabase":
        await SupabaseAuth(settings).delete_user(user_id)


# ---------------------------------------------------------------------------------------
# Users and sessions.
# ---------------------------------------------------------------------------------------
async def create_user(
    conn: Connection, settings: Settings, *, email: str, password: str, full_name: str
) -> dict[str, Any]:
    """`slotease users create`: the account, where SlotEase owns the accounts."""
    if await accounts_of(conn, settings) == "supabase":
        raise AccountsInSupabaseAuth(settings)
    return await register_user(conn, email=email, password=password, full_name=full_name)


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


async def sign_up(
    conn: Connection, context: AppContext, body: SignupRequest
) -> SessionOut | SignupPending:
    """The new account's session; in Supabase mode Supabase Auth's, or only the user while
    the project waits for the address to be confirmed."""
    if context.accounts == "supabase":
        metadata = {"full_name": body.full_name}
        if body.phone is not None:
            metadata["phone"] = body.phone
        answer = await SupabaseAuth(context.settings).sign_up(body.email, body.password, metadata)
        return signup_outcome(answer)
    user = await register_user(
        conn, email=body.email, password=body.password, full_name=body.full_name
    )
    await repository.act_as_user(conn, user["id"], user["email"])
    if body.phone is not None:
        await repository.upsert_profile(
            conn, user_id=user["id"], full_name=None, phone=body.phone, set_phone=True
        )
    await _send_verification(conn)
    return await _start_session(conn, context, user, family_id=uuid.uuid4())


async def sign_in_with_password(
    conn: Connection, context: AppContext, grant: PasswordGrant, client_address: str
) -> SessionOut | Problem:
    """The session, or the refusal to answer: returned rather than raised, so that the
    transaction commits the refusal's audit event (or the MFA step's token). In Supabase
    mode, Supabase Auth's password grant (which throttles and audits on its side)."""
    if context.accounts == "supabase":
        try:
            answer = await SupabaseAuth(context.settings).password_grant(
                grant.email, grant.password
            )
        except Problem as refusal:
            return refusal
        return session_of(answer)
    # Before the password is looked at: a locked account refuses the right password too.
    try:
        attempt = await context.login_throttle.begin(grant.email, client_address)
    except TooManyRequests as refusal:
        await repository.record_sign_in_refusal(
            conn, grant.email, event="sign_in_locked", client_address=client_address
        )
        return refusal
    user = await repository.find_user_by_email(conn, grant.email)
    stored_hash = user["encrypted_password"] if user else None
    # An unknown email is verified against a dummy hash, so both failures take as long.
    verified = await to_thread.run_sync(verify_password, stored_hash, grant.password)
    if user is None or stored_hash is None or not verified:
        await repository.record_sign_in_refusal(
            conn, grant.email, event="sign_in_failed", client_address=client_address
        )
        return Unauthorized(_BAD_CREDENTIALS)
    await context.login_throttle.succeeded(attempt)
    new_hash = None
    if needs_rehash(stored_hash):
        new_hash = await to_thread.run_sync(hash_password, grant.password)
    await repository.act_as_user(conn, user["id"], user["email"])
    account = await repository.my_account(conn)
    if account is not None and account["mfa_enabled"]:
        mfa_token = new_secret(ACCOUNT_TOKEN_PREFIX)
        await repository.issue_mfa_challenge(
            conn, hash_secret(mfa_token), MFA_STEP_TTL_MINUTES, new_hash
        )
        return MfaRequired(mfa_token)
    await repository.record_sign_in(
        conn, new_hash, factor="password", client_address=client_address
    )
    return await _start_session(conn, context, user, family_id=uuid.uuid4())


async def sign_in_with_mfa(
    conn: Connection, context: AppContext, grant: MfaGrant, client_address: str
) -> SessionOut | Problem:
    """The second step: the MFA step's token and a TOTP or recovery code. A wrong code counts
    against the token (returned, not raised, so that the count commits)."""
    require_own_accounts(context)
    token_hash = hash_secret(grant.mfa_token)
    user = await repository.mfa_challenge_user(conn, token_hash, MFA_STEP_FAILURES)
    if user is None:
        return Unauthorized("This sign-in step has ended; sign in with your password again.")
    await repository.act_as_user(conn, user["user_id"], user["email"])
    factor = await _accept_second_factor(conn, grant.code)
    await repository.settle_mfa_challenge(conn, token_hash, succeeded=factor is not None)
    if factor is None:
        return Unauthorized("The code is not valid.")
    await repository.record_sign_in(conn, None, factor=factor, client_address=client_address)
    session_user = {"id": user["user_id"], "email": user["email"], "full_name": user["full_name"]}
    return await _start_session(conn, context, session_user, family_id=uuid.uuid4())


async def _accept_second_factor(conn: Connection, code: str) -> str | None:
    """Which factor `code` proved for the signed-in user (spending it), or None."""
    factor = await repository.read_mfa_secret(conn)
    if factor is None or not factor["confirmed"]:
        return None
    if mfa.looks_like_totp(code):
        step = mfa.matching_step(factor["secret"], code)
        if step is not None and await repository.use_totp_step(conn, step):
            return "totp"
        return None
    if await repository.use_recovery_code(conn, mfa.hash_recovery_code(code)):
        return "recovery_code"
    return None


async def refresh(
    conn: Connection, context: AppContext, refresh_token: str
) -> SessionOut | RefreshRejected:
    """Spend a refresh token for a new session in the same family. A spent or revoked token
    presented again means it leaked: the whole family is revoked. In Supabase mode, Supabase
    Auth's refresh grant, which rotates its tokens likewise."""
    if context.accounts == "supabase":
        return session_of(await SupabaseAuth(context.settings).refresh_grant(refresh_token))
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
    access = _access_token(context, user["id"], user["email"], session_id=family_id)
    return SessionOut(
        user=SessionUser(id=user["id"], email=user["email"], full_name=user["full_name"]),
        access_token=access.access_token,
        refresh_token=refresh_token,
        expires_in=access.expires_in,
    )


def _access_token(
    context: AppContext, user_id: UUID, email: str, *, session_id: UUID
) -> AccessToken:
    ttl = context.settings.access_token_ttl_seconds
    return AccessToken(
        access_token=mint_access_token(
            context.token_keys.secret,
            user_id=user_id,
            email=email,
            ttl_seconds=ttl,
            issuer=context.settings.jwt_issuer,
            session_id=session_id,
        ),
        expires_in=ttl,
    )


async def session_access_token(
    conn: Connection, context: AppContext, refresh_token: str
) -> AccessToken | SessionOut | None:
    """An access token for the session of `refresh_token`, which stays unspent; None when the
    session is over (unknown, spent by a replay, revoked by logout, or expired).

    For the web pages' session cookie: a page (or several tabs) may ask concurrently, and
    rotating the token would make the second request look like a replay and revoke the whole
    family. The cookie is HttpOnly, SameSite=Lax, and every request that uses it carries a
    CSRF token, so it stands in for a classic server session.

    In Supabase mode the token is Supabase Auth's, which a refresh replaces: the session
    comes back whole so the page's cookie takes the new refresh token (Supabase Auth accepts
    the old one again for a few seconds, which covers tabs asking at once)."""
    if context.accounts == "supabase":
        try:
            return session_of(await SupabaseAuth(context.settings).refresh_grant(refresh_token))
        except SupabaseAuthRefused:
            return None
    token = await repository.session_user(conn, hash_secret(refresh_token))
    if token is None:
        return None
    return _access_token(context, token["user_id"], token["email"], session_id=token["family_id"])


async def act_as_session(conn: Connection, refresh_token: str) -> Principal | None:
    """Make the transaction act as the user of the page's session, for the forms that change
    the account; None when the session is over."""
    token = await repository.session_user(conn, hash_secret(refresh_token))
    if token is None:
        return None
    identity = await repository.act_as_user(
        conn, token["user_id"], token["email"], token["family_id"]
    )
    return Principal(identity=identity, user_id=token["user_id"], email=token["email"])


# ---------------------------------------------------------------------------------------
# The current user.
# ---------------------------------------------------------------------------------------
async def my_account(conn: Connection) -> Row | None:
    """The signed-in caller's account state (`email_verified`, `mfa_enabled`), or None."""
    return await repository.my_account(conn)


async def get_me(conn: Connection, principal: Principal) -> MeOut:
    assert principal.user_id is not None
    profile = await repository.get_profile(conn, principal.user_id)
    memberships = await repository.list_memberships(conn, principal.user_id)
    account = await repository.my_account(conn)
    return MeOut(
        id=principal.user_id,
        email=principal.email,
        full_name=profile["full_name"],
        phone=profile["phone"],
        is_super_admin=profile["is_super_admin"],
        email_verified=bool(account and account["email_verified"]),
        mfa_enabled=bool(account and account["mfa_enabled"]),
        memberships=[Membership(**row) for row in memberships],
    )


# ---------------------------------------------------------------------------------------
# Passwords, recovery and verification.
# ---------------------------------------------------------------------------------------
async def confirm_identity(
    conn: Connection,
    context: AppContext,
    principal: Principal,
    password: str,
    client_address: str,
    *,
    code: str | None = None,
    second_factor: bool = False,
) -> None:
    """The caller proves it is the account's owner before a change a stolen access token must
    not make: the password, throttled like a sign-in so the token cannot be used to guess it,
    and with `second_factor`, when MFA is on, a TOTP or recovery code (spent)."""
    assert principal.user_id is not None
    attempt = await context.login_throttle.begin(principal.email or "", client_address)
    if context.accounts == "supabase":
        await _confirm_with_supabase(context, principal, password)
        await context.login_throttle.succeeded(attempt)
        return
    stored_hash = await repository.my_password_hash(conn)
    if not await to_thread.run_sync(verify_password, stored_hash, password):
        raise Forbidden("The password is incorrect.")
    await context.login_throttle.succeeded(attempt)
    if not second_factor:
        return
    account = await repository.my_account(conn)
    mfa_on = account is not None and account["mfa_enabled"]
    if mfa_on and (code is None or await _accept_second_factor(conn, code) is None):
        raise Forbidden("A valid code from the authenticator app (or a recovery code) is needed.")


async def _confirm_with_supabase(context: AppContext, principal: Principal, password: str) -> None:
    """The password is Supabase Auth's to check: a password grant proves it (the session it
    opens is not kept). Multi-factor sign-in is Supabase Auth's there too."""
    try:
        await SupabaseAuth(context.settings).password_grant(principal.email or "", password)
    except SupabaseAuthRefused as refusal:
        if refusal.status == 401:
            raise Forbidden("The password is incorrect.") from None
        raise


async def change_password(
    conn: Connection,
    context: AppContext,
    principal: Principal,
    body: PasswordChange,
    client_address: str,
) -> None:
    """A new password; every session of the user but the caller's ends."""
    await confirm_identity(conn, context, principal, body.current_password, client_address)
    new_hash = await to_thread.run_sync(hash_password, body.new_password)
    await repository.change_password(conn, new_hash, principal.session_id)


async def request_recovery(conn: Connection, context: AppContext, email: str) -> None:
    """A reset link by email when an account has the address, and nothing otherwise; the
    caller cannot tell which (same answer, same work up to the database). In Supabase mode
    Supabase Auth sends its own link."""
    if context.accounts == "supabase":
        await SupabaseAuth(context.settings).recover(email)
        return
    await repository.request_password_reset(
        conn,
        email,
        new_secret(ACCOUNT_TOKEN_PREFIX),
        RESET_TTL_MINUTES,
        task=RESET_TASK,
        queue=INTERACTIVE,
    )


class TokenRefused(Problem):
    status, slug = 400, "invalid-token"


async def reset_password(conn: Connection, body: PasswordReset) -> None:
    new_hash = await to_thread.run_sync(hash_password, body.new_password)
    if await repository.reset_password(conn, hash_secret(body.token), new_hash) is None:
        raise TokenRefused("This reset link is not valid: it was used, replaced or has expired.")


async def verify_email(conn: Connection, token: str) -> None:
    if not await repository.verify_email(conn, hash_secret(token)):
        raise TokenRefused("This verification link is not valid: it was used or has expired.")


async def _send_verification(conn: Connection) -> None:
    """A verification link to the signed-in user's address, unless it is verified already."""
    token = new_secret(ACCOUNT_TOKEN_PREFIX)
    token_id = await repository.issue_verification(conn, hash_secret(token), VERIFICATION_TTL_HOURS)
    if token_id is not None:
        await enqueue_account_mail(conn, VERIFICATION_TASK, token_id, token)


async def resend_verification(conn: Connection) -> None:
    await _send_verification(conn)


# ---------------------------------------------------------------------------------------
# Multi-factor sign-in.
# ---------------------------------------------------------------------------------------
async def enroll_mfa(conn: Connection, principal: Principal) -> MfaEnrollment:
    """A new secret and recovery codes, shown only here; MFA is on once a code confirms."""
    assert principal.user_id is not None
    secret = mfa.new_secret()
    codes = mfa.new_recovery_codes()
    if not await repository.begin_mfa_enrollment(
        conn, principal.user_id, secret, [mfa.hash_recovery_code(code) for code in codes]
    ):
        raise Conflict("Multi-factor sign-in is already on; turn it off first.")
    return MfaEnrollment(
        secret=secret,
        otpauth_uri=mfa.otpauth_uri(secret, principal.email or str(principal.user_id)),
        recovery_codes=codes,
    )


async def confirm_mfa(conn: Connection, code: str) -> None:
    factor = await repository.read_mfa_secret(conn)
    if factor is None:
        raise Conflict("Start the enrollment first (POST /v1/me/mfa).")
    if factor["confirmed"]:
        raise Conflict("Multi-factor sign-in is already on.")
    step = mfa.matching_step(factor["secret"], code)
    if step is None or not await repository.use_totp_step(conn, step):
        raise Forbidden("The code is not valid.")
    await repository.confirm_mfa(conn)


async def disable_mfa(conn: Connection, code: str) -> None:
    account = await repository.my_account(conn)
    if account is None or not account["mfa_enabled"]:
        raise Conflict("Multi-factor sign-in is not on.")
    if await _accept_second_factor(conn, code) is None:
        raise Forbidden("The code is not valid.")
    await repository.disable_mfa(conn)


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
