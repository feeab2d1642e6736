"""Access tokens: HS256 JWTs compatible with Supabase's (opaque secrets are in kit.secrets)."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any
from uuid import UUID

import jwt

from slotease.config import DEFAULT_ISSUER, MAX_ACCESS_TOKEN_TTL_SECONDS

ALGORITHM = "HS256"
AUDIENCE = "authenticated"


class InvalidToken(Exception):
    pass


def mint_access_token(
    secret: str,
    *,
    user_id: UUID,
    email: str,
    ttl_seconds: int,
    issuer: str = DEFAULT_ISSUER,
    session_id: UUID | None = None,
) -> str:
    """`session_id` names the refresh-token family the token belongs to (claim `sid`): the
    token works only while that session does (see deps.caller_transaction)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user_id),
        "role": "authenticated",
        "aud": AUDIENCE,
        "email": email,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(secret: str, token: str, *, issuers: Collection[str]) -> dict[str, Any]:
    """The token's claims, or InvalidToken for anything but a live HS256 user token.

    Only HS256 is accepted (so `alg: none` and algorithm confusion fail), the audience must be
    `authenticated`, the issuer one of `issuers`, and `exp`, `iat` and `sub` are required. A
    token made to live longer than MAX_ACCESS_TOKEN_TTL_SECONDS is refused even though signed.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=list(issuers),
            options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims["exp"] - claims["iat"] > MAX_ACCESS_TOKEN_TTL_SECONDS:
        raise InvalidToken("the token's lifetime exceeds the maximum")
    if claims.get("role") != "authenticated":
        raise InvalidToken("the token's role is not 'authenticated'")
    try:
        UUID(str(claims["sub"]))
        if "sid" in claims:
            UUID(str(claims["sid"]))
    except ValueError as exc:
        raise InvalidToken("the token's subject or session is not an id") from exc
    return claims
