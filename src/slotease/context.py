"""What the running app holds for the lifetime of the process."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from slotease.auth.supabase import Accounts
from slotease.auth.throttle import LoginThrottle
from slotease.auth.tokens import TokenKeys
from slotease.config import Settings
from slotease.db.database import Database
from slotease.db.replicas import ReadRouting
from slotease.kit.events import EventBus
from slotease.kit.metrics import Metrics
from slotease.kit.ratelimit import RateLimiter
from slotease.realtime.access import AccessWatch
from slotease.realtime.broker import Broker
from slotease.realtime.positions import PositionWatch


@dataclass
class AppContext:
    settings: Settings
    db: Database
    # Where lag-tolerant reads go: a replica that keeps up, or `db`.
    reads: ReadRouting
    # What access tokens are checked with (the HS256 secret, and a JWKS when configured).
    token_keys: TokenKeys
    # Who owns the accounts, decided at start (auth.service.accounts_mode).
    accounts: Accounts
    metrics: Metrics
    # Shared by every Redis user in the process; None when REDIS_URL is not set.
    redis: Redis | None
    limiter: RateLimiter
    login_throttle: LoginThrottle
    # Carries topic events to the WebSocket clients of every server process.
    realtime: Broker
    # Authorizes the topics of open WebSocket connections again, periodically.
    realtime_access: AccessWatch
    # Publishes the positions of the tickets this process's clients follow when a line moves.
    realtime_positions: PositionWatch
    # The domain events' bus: realtime, notifications and webhooks subscribe at startup.
    events: EventBus


def app_context(connection: HTTPConnection) -> AppContext:
    context: AppContext = connection.app.state.context
    return context
