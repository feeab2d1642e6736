"""Access tokens: HS256 JWTs compatible with Supabase's, and opaque secrets stored as hashes."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any
from uuid import UUID

import jwt

ALGORITHM = "HS256"
AUDIENCE = "authenticated"


class InvalidToken(Exception):
    pass


def mint_access_token(secret: str, *, user_id: UUID, email: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "role": "authenticated",
        "aud": AUDIENCE,
        "email": email,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(secret: str, token: str) -> dict[str, Any]:
    """The token's claims, or InvalidToken for anything but a live HS256 user token.

    Only HS256 is accepted (so `alg: none` and algorithm confusion fail), the audience must be
    `authenticated`, and `exp` and `sub` are required.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("role") != "authenticated":
        raise InvalidToken("the token's role is not 'authenticated'")
    try:
        UUID(str(claims["sub"]))
    except ValueError as exc:
        raise InvalidToken("the token's subject is not a user id") from exc
    return claims


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """Refresh tokens and API keys are high-entropy, so a fast unsalted hash is enough to make
    a stolen table useless while keeping lookups an index probe."""
    return hashlib.sha256(secret.encode()).hexdigest()
