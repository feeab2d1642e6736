"""Web sessions: the cookie holds a refresh token, and pages trade it for access tokens.

Sign-in, sign-up and logout go through the auth service, exactly as `/v1/auth/*` do. The
session cookie is not rotated when a page asks for an access token: a page (or several tabs)
may ask concurrently, and rotation would make the second request look like a replayed token
and revoke the whole family. The cookie is HttpOnly, SameSite=Lax, and every request that uses
it carries a CSRF token, so it stands in for a classic server session.
"""

from __future__ import annotations

from dataclasses import dataclass

from slotease.auth import repository as auth_repository
from slotease.auth.principal import Principal
from slotease.auth.tokens import hash_secret, mint_access_token
from slotease.context import AppContext
from slotease.db.database import Connection


@dataclass(frozen=True)
class PageToken:
    access_token: str
    expires_in: int


async def access_token_for_session(
    conn: Connection, context: AppContext, refresh_token: str
) -> PageToken | None:
    """A short-lived access token for the session's user, or None when the session is over
    (unknown, spent by a replay, revoked by logout, or expired)."""
    token = await auth_repository.session_user(conn, hash_secret(refresh_token))
    if token is None:
        return None
    ttl = context.settings.access_token_ttl_seconds
    return PageToken(
        access_token=mint_access_token(
            context.jwt_secret,
            user_id=token["user_id"],
            email=token["email"],
            ttl_seconds=ttl,
            issuer=context.settings.jwt_issuer,
            session_id=token["family_id"],
        ),
        expires_in=ttl,
    )


async def act_as_session(conn: Connection, refresh_token: str) -> Principal | None:
    """Make the transaction act as the user of the page's session, for the forms that change
    the account; None when the session is over."""
    token = await auth_repository.session_user(conn, hash_secret(refresh_token))
    if token is None:
        return None
    identity = await auth_repository.act_as_user(
        conn, token["user_id"], token["email"], token["family_id"]
    )
    return Principal(identity=identity, user_id=token["user_id"], email=token["email"])
