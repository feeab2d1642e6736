"""The `X-SlotEase-Signature` header, built the way Stripe's is: `t=<unix>,v1=<hex>` where the
hex is HMAC-SHA256 keyed by the whole secret over `"<t>.<raw body>"`. During a secret rotation's
overlap one `v1=` per live secret is sent, newest first, so a receiver that knows either
secret accepts the delivery."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from slotease.kit.secrets import new_secret

SECRET_PREFIX = "whsec_"


def new_webhook_secret() -> str:
    return new_secret(SECRET_PREFIX)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    return ",".join(
        [f"t={timestamp}", *(f"v1={signature(secret, timestamp, body)}" for secret in secrets)]
    )
