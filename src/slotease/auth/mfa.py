"""TOTP (RFC 6238) codes and recovery codes of multi-factor sign-in; no I/O.

Codes are six digits over 30-second steps (what authenticator apps assume). A code is accepted
for its own step and one step either side, for clocks that drift; which step it matched is
returned so the database can refuse the same step (a replay) or an earlier one.
"""

from __future__ import annotations

import secrets
import time

import pyotp

from slotease.kit.secrets import hash_secret

ISSUER = "SlotEase"
DIGITS = 6
STEP_SECONDS = 30
ACCEPTED_DRIFT_STEPS = 1
RECOVERY_CODES = 10
# Ten base-32 characters (50 bits): a code is single use, shown once and stored hashed.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    return pyotp.random_base32()


def otpauth_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=ISSUER
    )


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step `code` is valid for around `at`, or None."""
    digits = code.replace(" ", "")
    if len(digits) != DIGITS or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int((time.time() if at is None else at) // STEP_SECONDS)
    for step in range(current - ACCEPTED_DRIFT_STEPS, current + ACCEPTED_DRIFT_STEPS + 1):
        if secrets.compare_digest(totp.at(step * STEP_SECONDS), digits):
            return step
    return None


def new_recovery_codes() -> list[str]:
    return [
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        for _ in range(RECOVERY_CODES)
    ]


def hash_recovery_code(code: str) -> str:
    """Recovery codes are random and single use: a fast hash of the normalized code suffices,
    as for refresh tokens. Case, spaces and dashes do not matter when it is typed back."""
    return hash_secret(code.replace("-", "").replace(" ", "").lower())


def looks_like_totp(code: str) -> bool:
    digits = code.replace(" ", "")
    return len(digits) == DIGITS and digits.isdigit()
