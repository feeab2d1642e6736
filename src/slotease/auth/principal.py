"""Who is calling: resolved from the request's credentials, without trusting any claim about
memberships. What the caller may see is then decided by PostgreSQL's policies."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from starlette.requests import HTTPConnection

from slotease.auth.tokens import InvalidToken, TokenKeys, verify_access_token
from slotease.db.database import ANONYMOUS, DbIdentity
from slotease.kit.problems import Unauthorized
from slotease.kit.secrets import hash_secret

API_KEY_PREFIX = "sk_"


@dataclass(frozen=True)
class Principal:
    identity: DbIdentity
    user_id: UUID | None = None
    email: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.identity.role == "anon"

    @property
    def session_id(self) -> UUID | None:
        """The refresh-token family a user's access token belongs to; None for tokens minted
        without one (Supabase's, for instance), which live until they expire."""
        sid = self.identity.claims.get("sid") if self.user_id else None
        return UUID(str(sid)) if sid else None

    @property
    def is_api_key(self) -> bool:
        return self.identity.api_key_hash is not None

    @property
    def rate_limit_key(self) -> str | None:
        """The bucket of a signed-in caller; anonymous callers are limited by address."""
        if self.identity.api_key_hash:
            return f"key:{self.identity.api_key_hash[:32]}"
        if self.user_id:
            return f"user:{self.user_id}"
        return None


ANONYMOUS_PRINCIPAL = Principal(identity=ANONYMOUS)


def api_key_from(connection: HTTPConnection) -> str | None:
    return connection.headers.get("apikey") or connection.headers.get("x-api-key")


def resolve_principal(
    connection: HTTPConnection, keys: TokenKeys, issuers: Collection[str]
) -> Principal:
    """Read the credentials of a request or WebSocket; 401 for any that are present but bad.

    An API key is only parsed here; whether it is live is checked inside the request's
    transaction (see deps.db_session), by the same function the policies use; until that has
    accepted it, the rate limiter counts it against the client address.
    """
    api_key = api_key_from(connection)
    authorization = connection.headers.get("authorization")
    token = (
        connection.query_params.get("token") if connection.scope["type"] == "websocket" else None
    )
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
        token = value.strip()
    if token:
        return principal_for_token(token, keys, issuers)
    if api_key:
        if not api_key.startswith(API_KEY_PREFIX):
            raise Unauthorized("The API key is not valid.")
        return Principal(
            identity=DbIdentity(
                role="authenticated",
                claims={"role": "authenticated"},
                api_key_hash=hash_secret(api_key),
            )
        )
    return ANONYMOUS_PRINCIPAL


def principal_for_token(token: str, keys: TokenKeys, issuers: Collection[str]) -> Principal:
    try:
        claims: dict[str, Any] = verify_access_token(keys, token, issuers=issuers)
    except InvalidToken as exc:
        raise Unauthorized("The access token is invalid or expired.") from exc
    return Principal(
        identity=DbIdentity(role="authenticated", claims=claims),
        user_id=UUID(claims["sub"]),
        email=claims.get("email"),
    )
