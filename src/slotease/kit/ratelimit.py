"""Rate limits per API key, per signed-in user and per client address (api.md, "Rate limits"),
and per address on the sign-in routes.

Counts live in Redis when it is configured, so that a limit holds across every server process,
and in this process's memory otherwise. A moving window is used: a burst at the edge of a fixed
window cannot double the allowance, and "remaining" is exact.

An API key gets a bucket of its own only once this process has seen the database accept it:
until then it is counted against the client address, so that inventing a key per request never
opens a fresh allowance.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slotease.config import Settings
from slotease.db.database import DbIdentity
from slotease.kit.clientaddress import client_address
from slotease.kit.metrics import Metrics
from slotease.kit.problems import TooManyRequests, Unauthorized

log = logging.getLogger(__name__)


class Caller(Protocol):
    """What the limiter needs of a request's credentials; auth's Principal is one. The app
    passes the function that reads them, so that kit depends on no feature."""

    @property
    def identity(self) -> DbIdentity: ...

    @property
    def is_api_key(self) -> bool: ...

    @property
    def rate_limit_key(self) -> str | None: ...


KEY_PREFIX = "slotease:ratelimit"
# Probes and scrapes must keep working for a caller that exhausted its allowance.
EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})
# The web pages' own scripts and styles: a page view must not spend a visitor's API budget.
EXEMPT_PREFIXES = ("/static/",)


# Where passwords, codes and account tokens are tried, accounts made and recovery emails
# asked for: limited per address on top of the caller's bucket.
SIGN_IN_PATHS = frozenset(
    {
        "/v1/auth/token",
        "/v1/auth/signup",
        "/v1/auth/recover",
        "/v1/auth/reset",
        "/v1/auth/verify",
        "/login",
        "/login/code",
        "/signup",
        "/forgot-password",
        "/reset-password",
        "/verify-email",
    }
)
# API keys this process has seen accepted. Bounded, although only a live key can enter, so that
# a deployment with very many keys keeps its memory flat; an evicted key is relearned.
_VERIFIED_KEYS_KEPT = 10_000


def _exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def _signs_in(scope: Scope) -> bool:
    # A WebSocket scope has no method: an upgrade never signs in.
    return scope.get("method") == "POST" and scope["path"] in SIGN_IN_PATHS


_WARNING_INTERVAL_SECONDS = 60.0
_SWEEP_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Quota:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }


class MovingWindows:
    """Moving windows in this process's memory: per key, the times of its hits still inside
    the window, oldest first, so a hit costs no more than dropping the ones that left it."""

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, deque[float]]] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        """The keys remembered."""
        return len(self._hits)

    def hit(self, key: str, amount: int, expiry: float) -> tuple[bool, float, int]:
        """Count one hit if fewer than `amount` fell in the last `expiry` seconds: whether it
        was allowed, when the window's oldest hit leaves it, and how many hits remain."""
        now = time.time()
        self._sweep(now)
        hits = self._hits.setdefault(key, (expiry, deque()))[1]
        while hits and hits[0] <= now - expiry:
            hits.popleft()
        allowed = len(hits) < amount
        if allowed:
            hits.append(now)
        return allowed, (hits[0] if hits else now) + expiry, amount - len(hits)

    def _sweep(self, now: float) -> None:
        # Keys whose last hit left its window are forgotten, so that callers who came once
        # (an address, a key) do not keep memory for the process's life.
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL_SECONDS
        for key, (expiry, hits) in list(self._hits.items()):
            if not hits or hits[-1] <= now - expiry:
                del self._hits[key]


class RateLimiter:
    def __init__(self, settings: Settings, metrics: Metrics, redis: Redis | None) -> None:
        # Without Redis the windows live here: limits' MemoryStorage hands an expiry pass to a
        # thread about once a request, the costliest step of the request path (issue 14).
        self._strategy: MovingWindowRateLimiter | None = None
        self._windows = MovingWindows()
        if redis is not None:
            # The connections come from the app's client; the URI only selects redis-py.
            storage = RedisStorage(
                "async+redis://",
                # Documented by limits, but its signature types options as scalars.
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
            )
            self._strategy = MovingWindowRateLimiter(storage)
        self._metrics = metrics
        self._limits: dict[str, RateLimitItem] = {
            "api_key": parse(settings.rate_limit_api_key),
            "user": parse(settings.rate_limit_user),
            "anon": parse(settings.rate_limit_anon),
            "auth": parse(settings.rate_limit_auth),
        }
        self._verified_keys: OrderedDict[str, None] = OrderedDict()
        self._next_warning = 0.0

    def key_accepted(self, key_hash: str) -> None:
        self._verified_keys[key_hash] = None
        self._verified_keys.move_to_end(key_hash)
        if len(self._verified_keys) > _VERIFIED_KEYS_KEPT:
            self._verified_keys.popitem(last=False)

    def key_refused(self, key_hash: str) -> None:
        self._verified_keys.pop(key_hash, None)

    def bucket(self, principal: Caller | None, client_ip: str) -> tuple[str, str]:
        """The kind of caller and the key its requests are counted under."""
        key = principal.rate_limit_key if principal else None
        if principal is None or key is None:
            return "anon", f"ip:{client_ip}"
        if not principal.is_api_key:
            return "user", key
        if principal.identity.api_key_hash in self._verified_keys:
            return "api_key", key
        return "anon", f"ip:{client_ip}"

    def sign_in_bucket(self, client_ip: str) -> tuple[str, str]:
        return "auth", f"signin:{client_ip}"

    async def hit(self, kind: str, key: str) -> Quota | None:
        """Count one request; None when the storage failed and the request goes unchecked."""
        item = self._limits[kind]
        if self._strategy is None:
            allowed, reset_at, remaining = self._windows.hit(
                f"{kind}:{key}", item.amount, item.get_expiry()
            )
        else:
            try:
                allowed = await self._strategy.hit(item, key)
                reset_at, remaining = await self._strategy.get_window_stats(item, key)
            except StorageError as exc:
                self.storage_failed(exc)
                return None
        if not allowed:
            self._metrics.rate_limited.labels(kind).inc()
        return Quota(
            allowed=allowed,
            limit=item.amount,
            remaining=max(0, remaining),
            reset_after=max(1, math.ceil(reset_at - time.time())),
        )

    def storage_failed(self, exc: Exception) -> None:
        # Failing open keeps the API up when Redis is down; the warning is throttled so that an
        # outage does not write one line per request.
        self._metrics.rate_limit_errors.inc()
        now = time.monotonic()
        if now >= self._next_warning:
            self._next_warning = now + _WARNING_INTERVAL_SECONDS
            log.warning("rate-limit storage unavailable, requests pass unchecked: %s", exc)


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        identify: Callable[[HTTPConnection], Caller],
        settings: Settings,
    ) -> None:
        self.app = app
        self.limiter = limiter
        # Raises Unauthorized for credentials that are present but bad.
        self.identify = identify
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A WebSocket upgrade is a request like any other (the realtime endpoint's messages
        # have their own per-connection budget).
        if scope["type"] not in ("http", "websocket") or _exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        principal: Caller | None
        try:
            principal = self.identify(connection)
        except Unauthorized:
            # The route answers 401; until then the caller is counted by address.
            principal = None
        else:
            # Read by auth.deps.get_principal, so the credentials are decoded once.
            scope.setdefault("state", {})["principal"] = principal
        address = client_address(connection, self.settings)
        # Read by the realtime endpoint, which caps the connections per address.
        scope.setdefault("state", {})["client_ip"] = address
        quota = await self.limiter.hit(*self.limiter.bucket(principal, address))
        if quota is not None and quota.allowed and _signs_in(scope):
            sign_in = await self.limiter.hit(*self.limiter.sign_in_bucket(address))
            # The answer shows whichever allowance runs out first.
            if sign_in is not None and (not sign_in.allowed or sign_in.remaining < quota.remaining):
                quota = sign_in
        if quota is None:
            await self.app(scope, receive, send)
            return
        headers = quota.headers()
        if not quota.allowed:
            refusal = TooManyRequests(
                f"Too many requests: the limit is {quota.limit}; retry in {quota.reset_after} s.",
                headers={**headers, "Retry-After": str(quota.reset_after)},
            )
            await refusal.response()(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(raw=list(message.get("headers", [])))
                response_headers.update(headers)
                message["headers"] = response_headers.raw
            await send(message)

        await self.app(scope, receive, send_with_quota)
