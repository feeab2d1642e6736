"""create_app(): routers, middleware and the lifespan that owns the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from anyio import to_thread
from fastapi import Depends, FastAPI
from redis.asyncio import Redis

from slotease.analytics.routes import router as analytics_router
from slotease.appointments.routes import router as appointments_router
from slotease.auth.principal import resolve_principal
from slotease.auth.routes import router as auth_router
from slotease.auth.service import accounts_mode
from slotease.auth.throttle import LoginThrottle
from slotease.auth.tokens import SigningKeys, TokenKeys
from slotease.config import Settings, get_settings
from slotease.context import AppContext
from slotease.db.pools import api_database, read_routing
from slotease.jobs.worker import in_process_worker
from slotease.keys.service import open_keyring
from slotease.kit.access import AccessMiddleware
from slotease.kit.background import running
from slotease.kit.bodylimit import BodyLimitMiddleware
from slotease.kit.dberrors import install_database_refusals
from slotease.kit.events import EventBus
from slotease.kit.metrics import Metrics
from slotease.kit.openapi import problem_openapi
from slotease.kit.problems import install_problem_handlers
from slotease.kit.ratelimit import EXEMPT_PATHS, RateLimiter, RateLimitMiddleware
from slotease.kit.textinput import reject_nul_characters
from slotease.notifications.automatic import transactional_handler
from slotease.notifications.routes import router as notifications_router
from slotease.ops.monitoring import periodic_alert_rules
from slotease.ops.routes import router as ops_router
from slotease.organizations.routes import router as organizations_router
from slotease.privacy.routes import router as privacy_router
from slotease.queues import service as queue_service
from slotease.queues.routes import router as queues_router
from slotease.realtime.access import AccessWatch
from slotease.realtime.broker import make_broker
from slotease.realtime.hub import Hub
from slotease.realtime.positions import PositionWatch
from slotease.realtime.routes import router as realtime_router
from slotease.services.routes import router as services_router
from slotease.waitlist.routes import router as waitlist_router
from slotease.web.routes import router as web_router
from slotease.web.security import StrictTransportSecurityMiddleware
from slotease.webhooks import delivery as webhook_delivery
from slotease.webhooks.routes import router as webhooks_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = api_database(settings)
    metrics = Metrics(db.stats)
    # Short timeouts: a stalled Redis must not hold requests (the limiter then fails open).
    redis = (
        Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        if settings.redis_url
        else None
    )
    limiter = RateLimiter(settings, metrics, redis)
    hub = Hub(send_queue=settings.realtime_send_queue, replay=settings.realtime_replay)
    broker = make_broker(
        hub,
        redis,
        url=settings.redis_url,
        prefix=settings.realtime_prefix,
        connections_per_address=settings.realtime_connections_per_address,
    )
    positions = PositionWatch(broker, partial(queue_service.positions_of, db))
    hub.observe(positions)
    jwks_url = settings.resolved_jwks_url
    context = AppContext(
        settings=settings,
        db=db,
        reads=read_routing(settings, db, redis),
        token_keys=TokenKeys(
            settings.resolved_jwt_secret(),
            SigningKeys(jwks_url, refresh_seconds=settings.jwks_refresh_seconds)
            if jwks_url
            else None,
        ),
        # Decided again at start when SLOTEASE_AUTH is `auto` (the database says).
        accounts="supabase" if settings.auth_mode == "supabase" else "standalone",
        metrics=metrics,
        redis=redis,
        limiter=limiter,
        login_throttle=LoginThrottle(settings, redis, limiter.storage_failed),
        realtime=broker,
        realtime_access=AccessWatch(db, hub, period_seconds=settings.realtime_recheck_seconds),
        realtime_positions=positions,
        events=EventBus(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.db.open()
        await open_keyring(settings, context.db, as_service=False)
        context.accounts = await accounts_mode(context.db, settings, as_service=False)
        if context.token_keys.jwks is not None:
            # The first fetch before serving, so that no request waits for it.
            await to_thread.run_sync(context.token_keys.jwks.refresh)
        await context.reads.start()
        await context.realtime.start()
        await context.realtime_access.start()
        events = context.events
        unsubscribe_realtime = events.subscribe(context.realtime.on_event)
        unsubscribe_notifications = events.subscribe_transactional(transactional_handler(settings))
        unsubscribe_webhooks = events.subscribe_transactional(
            webhook_delivery.transactional_handler
        )
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(running(context.realtime_positions.run()))
                if settings.run_worker:
                    worker_db = await stack.enter_async_context(
                        in_process_worker(settings, events, redis=context.redis)
                    )
                    await stack.enter_async_context(
                        periodic_alert_rules(
                            worker_db,
                            context.db,
                            metrics.registry,
                            settings.pool_max_size,
                            settings.alert_interval_seconds,
                        )
                    )
                yield
        finally:
            unsubscribe_webhooks()
            unsubscribe_notifications()
            unsubscribe_realtime()
            await context.realtime_access.stop()
            await context.realtime.stop()
            await context.reads.stop()
            await context.db.close()
            if context.redis is not None:
                await context.redis.aclose()

    app = FastAPI(
        title="SlotEase",
        version="0.1.0",
        summary="Appointments and live queues for hospitals, clinics, banks and public offices.",
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_characters)],
    )
    app.state.context = context
    install_problem_handlers(app)
    install_database_refusals(app)
    app.openapi = problem_openapi(app, unlimited=EXEMPT_PATHS)  # type: ignore[method-assign]
    # Added innermost first: the access layer wraps the rate limit, which wraps the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=context.limiter,
        identify=partial(
            resolve_principal,
            keys=context.token_keys,
            issuers=settings.accepted_jwt_issuers,
        ),
        settings=settings,
    )
    app.add_middleware(AccessMiddleware, metrics=metrics, settings=settings)
    app.add_middleware(StrictTransportSecurityMiddleware)
    app.include_router(ops_router)
    app.include_router(auth_router, prefix="/v1")
    app.include_router(organizations_router, prefix="/v1")
    app.include_router(services_router, prefix="/v1")
    app.include_router(appointments_router, prefix="/v1")
    app.include_router(analytics_router, prefix="/v1")
    app.include_router(queues_router, prefix="/v1")
    app.include_router(realtime_router, prefix="/v1")
    app.include_router(notifications_router, prefix="/v1")
    app.include_router(waitlist_router, prefix="/v1")
    app.include_router(webhooks_router, prefix="/v1")
    app.include_router(privacy_router, prefix="/v1")
    app.include_router(web_router)
    return app
