"""Access tokens: JWTs compatible with Supabase's (opaque secrets are in kit.secrets).

SlotEase mints HS256 tokens with its secret (a Supabase project's legacy JWT secret is the
same kind). A Supabase project with asymmetric signing keys signs RS256 or ES256 tokens and
publishes the public keys as a JWKS (`/auth/v1/.well-known/jwks.json`): `SigningKeys` keeps
them, and a token is checked with the secret or with the JWKS key its header names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from slotease.config import DEFAULT_ISSUER, MAX_ACCESS_TOKEN_TTL_SECONDS

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})
AUDIENCE = "authenticated"
# A token naming a key id the set does not hold makes the set be fetched again (a rotation
# publishes the new key before signing with it), but no more often than this: forged key ids
# must not turn every request into a fetch.
UNKNOWN_KEY_REFETCH_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 3.0


class InvalidToken(Exception):
    pass


class SigningKeys:
    """The public keys of a JWKS, fetched on first use, again every `refresh_seconds`, and at
    once (rate-limited) for a key id it does not hold. A failed fetch keeps the keys held.

    Token checks are synchronous, so a fetch holds the request that needed it (a small
    document, with a short timeout); `refresh` at start takes the first one off the requests.
    """

    def __init__(
        self, url: str, *, refresh_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = url
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()

    def key(self, kid: str) -> PyJWK | None:
        now = self._clock()
        if now - self._fetched_at > self.refresh_seconds or (
            kid not in self._keys and now - self._attempted_at > UNKNOWN_KEY_REFETCH_SECONDS
        ):
            self.refresh()
        return self._keys.get(kid)

    def refresh(self) -> None:
        with self._lock:
            self._attempted_at = self._clock()
            try:
                response = httpx.get(self.url, timeout=JWKS_FETCH_TIMEOUT_SECONDS)
                response.raise_for_status()
                found = PyJWKSet(response.json().get("keys", [])).keys
            except (httpx.HTTPError, ValueError, AttributeError, jwt.PyJWTError) as exc:
                log.warning("the JWKS at %s could not be read: %s", self.url, exc)
                return
            self._keys = {
                key.key_id: key
                for key in found
                if key.key_id and key.algorithm_name in ASYMMETRIC_ALGORITHMS
            }
            self._fetched_at = self._clock()


@dataclass(frozen=True)
class TokenKeys:
    """What access tokens are checked with: the HS256 secret (which also mints SlotEase's
    own) and, when configured, the JWKS of RS256/ES256 tokens."""

    secret: str
    jwks: SigningKeys | None = None


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


def _verification_key(keys: TokenKeys, token: str) -> tuple[str | PyJWK, str]:
    """The key that must have signed `token`, and its one algorithm."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    algorithm = header.get("alg")
    if algorithm == ALGORITHM:
        return keys.secret, ALGORITHM
    if algorithm not in ASYMMETRIC_ALGORITHMS or keys.jwks is None:
        raise InvalidToken(f"tokens signed with {algorithm!r} are not accepted")
    kid = header.get("kid")
    key = keys.jwks.key(kid) if isinstance(kid, str) else None
    # The key's own algorithm must be the token's: an RSA key never checks an ES256 claim.
    if key is None or key.algorithm_name != algorithm:
        raise InvalidToken("the token's signing key is not in the JWKS")
    return key, algorithm


def verify_access_token(keys: TokenKeys, token: str, *, issuers: Collection[str]) -> dict[str, Any]:
    """The token's claims, or InvalidToken for anything but a live user token.

    HS256 tokens are checked with the secret, RS256/ES256 ones with the JWKS key their `kid`
    names; nothing else is accepted (so `alg: none` and algorithm confusion fail). The audience
    must be `authenticated`, the issuer one of `issuers`, and `exp`, `iat` and `sub` are
    required. A token made to live longer than MAX_ACCESS_TOKEN_TTL_SECONDS is refused even
    though signed.
    """
    key, algorithm = _verification_key(keys, token)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
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
