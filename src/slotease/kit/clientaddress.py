"""The address of the client behind a request: the one value rate limits, login throttling,
the /metrics guard and the access log all use, so they can never disagree about who called."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from slotease.config import Settings

UNKNOWN = "unknown"


def client_address(connection: HTTPConnection, settings: Settings) -> str:
    """The peer's address, or with SLOTEASE_TRUST_FORWARDED_FOR the X-Forwarded-For hop that
    the nearest of our SLOTEASE_TRUSTED_PROXY_COUNT proxies saw. Each proxy appends the address
    it received from, so only the right-most entries are ours; the left-most is whatever the
    client wrote. With fewer entries than proxies, the request bypassed them: the peer stands."""
    peer = connection.client.host if connection.client else UNKNOWN
    if not settings.trust_forwarded_for:
        return peer
    hops = [
        hop.strip()
        for header in connection.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    if len(hops) < settings.trusted_proxy_count:
        return peer
    return hops[-settings.trusted_proxy_count]
