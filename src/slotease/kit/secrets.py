"""Opaque secrets (refresh tokens, API keys, invitation and calendar tokens, webhook signing
keys): random strings handed out once and stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """Refresh tokens and API keys are high-entropy, so a fast unsalted hash is enough to make
    a stolen table useless while keeping lookups an index probe."""
    return hashlib.sha256(secret.encode()).hexdigest()
