"""HTTP calls to providers, with their failures sorted into transient and permanent."""

from __future__ import annotations

from typing import Any

import httpx

from slotease.notifications.channels.base import PermanentDeliveryError, TransientDeliveryError


async def post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = await client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(f"timed out: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"unreachable: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientDeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")
    if response.status_code >= 400:
        raise PermanentDeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")
    return response
