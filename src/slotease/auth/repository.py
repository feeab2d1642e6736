"""All SQL of sign-up, refresh tokens, the current user's profile and API keys. Accounts and
sessions are reached only through the narrow functions of the database (migration 0011): the
request path never reads auth.users or the refresh tokens itself."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.errors import ForeignKeyViolation

from slotease.db.database import Connection, DbIdentity, act_as
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row
from slotease.jobs.queues import priority_of
from slotease.kit import crypto
from slotease.kit.secrets import hash_secret


async def sign_up(
    conn: Connection, *, email: str, password_hash: str, full_name: str
) -> Row | None:
    """The new user (with their profile, without a phone number: that is sealed to the new
    id, see `upsert_profile`), or None when the address is taken."""
    return await fetch_one(
        conn,
        "select id, email from app.sign_up(%(email)s, %(password_hash)s, %(full_name)s)",
        {"email": email, "password_hash": password_hash, "full_name": full_name},
    )


async def add_platform_admin(conn: Connection, user_id: UUID) -> None:
    await conn.execute(
        "insert into app.platform_admins (user_id) values (%(user_id)s) on conflict do nothing",
        {"user_id": user_id},
    )


async def find_user_by_email(conn: Connection, email: str) -> Row | None:
    return await fetch_one(
        conn,
        "select id, email, encrypted_password, full_name from app.sign_in_candidate(%(email)s)",
        {"email": email},
    )


async def act_as_user(
    conn: Connection, user_id: UUID, email: str, session_id: UUID | None = None
) -> DbIdentity:
    """From here on the transaction acts as the user who just proved who they are (in the
    session `session_id`, when known), so what it writes of their session is theirs alone."""
    claims = {"sub": str(user_id), "email": email, "role": "authenticated"}
    if session_id is not None:
        claims["sid"] = str(session_id)
    identity = DbIdentity(role="authenticated", claims=claims)
    await act_as(conn, identity)
    return identity


async def record_sign_in(
    conn: Connection, new_password_hash: str | None, *, factor: str, client_address: str
) -> None:
    """The signed-in user's sign-in stamp and its audit event."""
    await conn.execute(
        "select app.record_sign_in(%(password_hash)s, %(factor)s, %(address)s)",
        {"password_hash": new_password_hash, "factor": factor, "address": client_address},
    )


async def record_sign_in_refusal(
    conn: Connection, email: str, *, event: str, client_address: str
) -> None:
    """`sign_in_failed` or `sign_in_locked`, in the audit log of the account `email` names."""
    await conn.execute(
        "select app.record_sign_in_refusal(%(email)s, %(event)s, %(address)s)",
        {"email": email, "event": event, "address": client_address},
    )


async def insert_refresh_token(
    conn: Connection, *, family_id: UUID, token_hash: str, ttl_days: int
) -> None:
    await conn.execute(
        "select app.issue_refresh_token(%(family_id)s, %(token_hash)s, %(ttl_days)s)",
        {"family_id": family_id, "token_hash": token_hash, "ttl_days": ttl_days},
    )


async def spend_refresh_token(conn: Connection, token_hash: str) -> Row:
    """`outcome` ('ok', 'unknown', 'reused', 'expired') and, when ok, the token's user and
    family. A reused token has its family revoked by the same statement."""
    return await fetch_row(
        conn,
        "select outcome, user_id, family_id, email, full_name from"
        " app.spend_refresh_token(%(token_hash)s)",
        {"token_hash": token_hash},
    )


async def session_user(conn: Connection, token_hash: str) -> Row | None:
    """The user and family of a live refresh token, which stays unspent."""
    return await fetch_one(
        conn,
        "select user_id, email, family_id from app.session_user_of(%(token_hash)s)",
        {"token_hash": token_hash},
    )


def caller_checks(
    session_id: UUID | None, api_key: bool
) -> tuple[sql.Composed, dict[str, Any]] | None:
    """One select of what the caller's credentials need beyond the policies, or None when
    they need nothing: `session_live`, whether the access token's session is still live,
    and `key_live`, whether the API key the transaction acts for exists, unrevoked and
    unexpired (checked by the same function the policies use)."""
    columns: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if session_id is not None:
        columns.append(sql.SQL("app.session_is_live(%(session_id)s) as session_live"))
        params["session_id"] = session_id
    if api_key:
        columns.append(sql.SQL("exists (select from app.api_key_grant()) as key_live"))
    if not columns:
        return None
    return sql.SQL("select {}").format(sql.SQL(", ").join(columns)), params


async def revoke_family_of_token(conn: Connection, token_hash: str) -> None:
    await conn.execute(
        "select app.revoke_refresh_family(%(token_hash)s)", {"token_hash": token_hash}
    )


async def get_profile(conn: Connection, user_id: UUID) -> Row:
    """The profile fields (empty when the user has none yet) and the platform-admin flag."""
    row = await fetch_row(
        conn,
        "select coalesce(p.full_name, '') as full_name, p.phone,"
        " (select app.is_super_admin()) as is_super_admin"
        " from (select %(user_id)s::uuid as user_id) me"
        " left join public.user_profiles p on p.user_id = me.user_id",
        {"user_id": user_id},
    )
    return {**row, "phone": open_phone(row["phone"], user_id)}


def seal_phone(phone: str | None, user_id: UUID) -> bytes | None:
    return crypto.encrypt_optional(phone, context=crypto.field_context(crypto.PHONE, user_id))


def open_phone(blob: bytes | None, user_id: UUID) -> str | None:
    return crypto.decrypt_optional(blob, context=crypto.field_context(crypto.PHONE, user_id))


async def list_memberships(conn: Connection, user_id: UUID) -> list[Row]:
    return await fetch_all(
        conn,
        "select organization_id, role from public.organization_members"
        " where user_id = %(user_id)s order by created_at, organization_id",
        {"user_id": user_id},
    )


async def upsert_profile(
    conn: Connection, *, user_id: UUID, full_name: str | None, phone: str | None, set_phone: bool
) -> Row | None:
    """Write the given fields (a user signed up through Supabase may have no profile yet);
    None when the user no longer exists."""
    try:
        cursor = await conn.execute(
            "insert into public.user_profiles as p (user_id, full_name, phone)"
            " values (%(user_id)s, coalesce(%(full_name)s, ''), %(phone)s)"
            " on conflict (user_id) do update set"
            " full_name = coalesce(%(full_name)s, p.full_name),"
            " phone = case when %(set_phone)s then %(phone)s else p.phone end"
            " returning full_name, phone",
            {
                "user_id": user_id,
                "full_name": full_name,
                "phone": seal_phone(phone, user_id),
                "set_phone": set_phone,
            },
        )
    except ForeignKeyViolation:
        return None
    row = await cursor.fetchone()
    return None if row is None else {**row, "phone": open_phone(row["phone"], user_id)}


_API_KEY_COLUMNS = (
    "id, organization_id, name, role, prefix, created_by, created_at, last_used_at, expires_at"
)
# A key that can no longer authenticate is gone as far as its organization's admins are concerned.
_LIVE_API_KEY = "revoked_at is null and (expires_at is null or expires_at > now())"


async def insert_api_key(
    conn: Connection,
    *,
    organization_id: UUID,
    name: str,
    role: str,
    prefix: str,
    key_hash: str,
) -> Row:
    return await fetch_row(
        conn,
        "insert into public.api_keys (organization_id, name, role, prefix, key_hash, created_by)"
        " values (%(org)s, %(name)s, %(role)s, %(prefix)s, %(hash)s, (select auth.uid()))"
        " returning " + _API_KEY_COLUMNS,
        {"org": organization_id, "name": name, "role": role, "prefix": prefix, "hash": key_hash},
    )


async def list_api_keys(
    conn: Connection, organization_id: UUID, *, after: list[Any] | None, limit: int
) -> list[Row]:
    """Live keys (rotated ones included until they expire), oldest first; `limit + 1` rows."""
    return await fetch_all(
        conn,
        "select " + _API_KEY_COLUMNS + " from public.api_keys"
        " where organization_id = %(org)s and "
        + _LIVE_API_KEY
        + " and (%(after_at)s::timestamptz is null"
        "      or (created_at, id) > (%(after_at)s::timestamptz, %(after_id)s::uuid))"
        " order by created_at, id limit %(limit)s",
        {
            "org": organization_id,
            "after_at": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit + 1,
        },
    )


async def revoke_api_key(conn: Connection, organization_id: UUID, key_id: UUID) -> bool:
    cursor = await conn.execute(
        "update public.api_keys set revoked_at = now()"
        " where id = %(key_id)s and organization_id = %(organization_id)s and "
        + _LIVE_API_KEY
        + " returning id",
        {"key_id": key_id, "organization_id": organization_id},
    )
    return await cursor.fetchone() is not None


async def lock_api_key(conn: Connection, organization_id: UUID, key_id: UUID) -> Row | None:
    cursor = await conn.execute(
        "select " + _API_KEY_COLUMNS + " from public.api_keys"
        " where id = %(key_id)s and organization_id = %(organization_id)s and "
        + _LIVE_API_KEY
        + " for update",
        {"key_id": key_id, "organization_id": organization_id},
    )
    return await cursor.fetchone()


async def expire_api_key(
    conn: Connection, organization_id: UUID, key_id: UUID, *, grace_minutes: int
) -> None:
    await conn.execute(
        "update public.api_keys set expires_at = now() + make_interval(mins => %(grace_minutes)s)"
        " where id = %(key_id)s and organization_id = %(organization_id)s",
        {"grace_minutes": grace_minutes, "key_id": key_id, "organization_id": organization_id},
    )


async def delete_expired_refresh_families(conn: Connection) -> int:
    """Only families whose every token has expired: a spent token of a live family must stay
    recognizable, so that replaying it still revokes the family."""
    cursor = await conn.execute(
        "delete from app.refresh_tokens t where not exists ("
        " select 1 from app.refresh_tokens live"
        " where live.family_id = t.family_id and live.expires_at > now())"
    )
    return cursor.rowcount


# ---------------------------------------------------------------------------------------
# Accounts: the caller's own password, recovery, verification.
# ---------------------------------------------------------------------------------------
async def accounts_in_supabase(conn: Connection) -> bool:
    row = await fetch_row(conn, "select app.accounts_in_supabase() as supabase")
    return bool(row["supabase"])


async def my_account(conn: Connection) -> Row | None:
    """`email`, `email_verified` and `mfa_enabled` of the signed-in caller."""
    return await fetch_one(conn, "select email, email_verified, mfa_enabled from app.my_account()")


async def my_password_hash(conn: Connection) -> str | None:
    row = await fetch_row(conn, "select app.my_password_hash() as hash")
    password_hash: str | None = row["hash"]
    return password_hash


async def change_password(conn: Connection, password_hash: str, keep_session: UUID | None) -> None:
    await conn.execute(
        "select app.change_password(%(password_hash)s, %(keep_session)s)",
        {"password_hash": password_hash, "keep_session": keep_session},
    )


async def request_password_reset(
    conn: Connection, email: str, token: str, ttl_minutes: int, *, task: str, queue: str
) -> UUID | None:
    """A reset token for the account `email` names, with the job mailing it; None when no
    account has the address. One statement either way, so that the answer's timing does not
    tell whether the address has an account."""
    row = await fetch_row(
        conn,
        "with reset as (select app.request_password_reset("
        "  %(email)s, %(hash)s, make_interval(mins => %(ttl)s)) as id)"
        " select id, case when id is not null then app.enqueue_job(%(queue)s, %(task)s,"
        "  jsonb_build_object('token_id', id, 'token', %(token)s::text),"
        "  priority => %(priority)s) end as job_id"
        " from reset",
        {
            "email": email,
            "hash": hash_secret(token),
            "ttl": ttl_minutes,
            "queue": queue,
            "task": task,
            "token": token,
            "priority": priority_of(queue),
        },
    )
    token_id: UUID | None = row["id"]
    return token_id


async def reset_password(conn: Connection, token_hash: str, password_hash: str) -> UUID | None:
    """The account whose password the live reset token changed; None for any other token."""
    row = await fetch_row(
        conn,
        "select app.reset_password(%(token_hash)s, %(password_hash)s) as user_id",
        {"token_hash": token_hash, "password_hash": password_hash},
    )
    user_id: UUID | None = row["user_id"]
    return user_id


async def issue_verification(conn: Connection, token_hash: str, ttl_hours: int) -> UUID | None:
    """The caller's new verification token; None once the address is verified."""
    row = await fetch_row(
        conn,
        "select app.issue_verification(%(token_hash)s, make_interval(hours => %(ttl)s)) as id",
        {"token_hash": token_hash, "ttl": ttl_hours},
    )
    token_id: UUID | None = row["id"]
    return token_id


async def verify_email(conn: Connection, token_hash: str) -> bool:
    row = await fetch_row(
        conn, "select app.verify_email(%(token_hash)s) as verified", {"token_hash": token_hash}
    )
    return bool(row["verified"])


async def account_mail(conn: Connection, token_id: UUID) -> Row | None:
    """As service_role: the address and name a live reset or verification token is for."""
    return await fetch_one(
        conn,
        "select u.email, coalesce(p.full_name, '') as full_name, t.expires_at"
        " from app.account_tokens t join auth.users u on u.id = t.user_id"
        " left join public.user_profiles p on p.user_id = u.id"
        " where t.id = %(token_id)s and t.used_at is null and t.expires_at > now()",
        {"token_id": token_id},
    )


# ---------------------------------------------------------------------------------------
# Multi-factor sign-in. The factor's secret is written by `begin_mfa_enrollment` and read by
# `read_mfa_secret`, and by nothing else.
# ---------------------------------------------------------------------------------------
async def begin_mfa_enrollment(
    conn: Connection, user_id: UUID, secret: str, code_hashes: list[str]
) -> bool:
    """A new unconfirmed factor for the caller (`user_id`), its secret sealed to them; False
    while a confirmed one exists."""
    sealed = crypto.encrypt(secret, context=crypto.field_context(crypto.MFA_SECRET, user_id))
    row = await fetch_row(
        conn,
        "select app.begin_mfa_enrollment(%(secret)s, %(code_hashes)s) as begun",
        {"secret": sealed, "code_hashes": code_hashes},
    )
    return bool(row["begun"])


async def read_mfa_secret(conn: Connection) -> Row | None:
    """`secret` (opened) and `confirmed` of the caller's factor, if any."""
    row = await fetch_one(
        conn, "select secret, confirmed, auth.uid() as user_id from app.my_mfa_factor()"
    )
    if row is None:
        return None
    context = crypto.field_context(crypto.MFA_SECRET, row["user_id"])
    return {**row, "secret": crypto.decrypt(row["secret"], context=context)}


async def use_totp_step(conn: Connection, step: int) -> bool:
    """Whether a code of time step `step` is accepted: not replayed, not older than the last."""
    row = await fetch_row(conn, "select app.use_totp_step(%(step)s) as accepted", {"step": step})
    return bool(row["accepted"])


async def use_recovery_code(conn: Connection, code_hash: str) -> bool:
    row = await fetch_row(
        conn, "select app.use_recovery_code(%(code_hash)s) as accepted", {"code_hash": code_hash}
    )
    return bool(row["accepted"])


async def confirm_mfa(conn: Connection) -> None:
    await conn.execute("select app.confirm_mfa()")


async def disable_mfa(conn: Connection) -> None:
    await conn.execute("select app.disable_mfa()")


async def issue_mfa_challenge(
    conn: Connection, token_hash: str, ttl_minutes: int, new_password_hash: str | None
) -> None:
    await conn.execute(
        "select app.issue_mfa_challenge("
        "%(token_hash)s, make_interval(mins => %(ttl)s), %(password_hash)s)",
        {"token_hash": token_hash, "ttl": ttl_minutes, "password_hash": new_password_hash},
    )


async def mfa_challenge_user(conn: Connection, token_hash: str, max_failures: int) -> Row | None:
    """`user_id`, `email`, `full_name` of a live MFA step token, locked for this transaction."""
    return await fetch_one(
        conn,
        "select user_id, email, full_name"
        " from app.mfa_challenge_user(%(token_hash)s, %(max_failures)s)",
        {"token_hash": token_hash, "max_failures": max_failures},
    )


async def settle_mfa_challenge(conn: Connection, token_hash: str, *, succeeded: bool) -> None:
    await conn.execute(
        "select app.settle_mfa_challenge(%(token_hash)s, %(succeeded)s)",
        {"token_hash": token_hash, "succeeded": succeeded},
    )


async def mfa_blocked_org_ids(conn: Connection) -> list[UUID]:
    """Organizations where the caller is staff or admin but, lacking MFA they require, does
    not act as such."""
    row = await fetch_row(conn, "select app.mfa_blocked_org_ids() as ids")
    return list(row["ids"])
