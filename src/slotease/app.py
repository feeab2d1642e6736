"""create_app(): routers, middleware and the lifespan that owns the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from slotease.auth.routes import router as auth_router
from slotease.config import Settings, get_settings
from slotease.context import AppContext
from slotease.db.database import Database
from slotease.db.urls import app_conninfo
from slotease.kit.problems import install_problem_handlers
from slotease.ops.routes import router as ops_router
from slotease.organizations.routes import router as organizations_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    context = AppContext(
        settings=settings,
        db=Database(
            app_conninfo(settings),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
        ),
        jwt_secret=settings.resolved_jwt_secret(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.db.open()
        try:
            yield
        finally:
            await context.db.close()

    app = FastAPI(
        title="SlotEase",
        version="0.1.0",
        summary="Appointments and live queues for hospitals, clinics, banks and public offices.",
        lifespan=lifespan,
    )
    app.state.context = context
    install_problem_handlers(app)
    app.include_router(ops_router)
    app.include_router(auth_router, prefix="/v1")
    app.include_router(organizations_router, prefix="/v1")
    return app
