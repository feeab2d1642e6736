"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from slotease.auth.deps import ClientAddressDep, ContextDep
from slotease.db.database import ANONYMOUS
from slotease.kit.metrics import scrape_refusal
from slotease.ops import monitoring

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={
        200: {
            "description": "The primary answers; `degraded` when a read replica is down or "
            "lagging (its reads then go to the primary)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        503: {
            "description": "The database is unreachable",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def ready(context: ContextDep) -> JSONResponse:
    # The replicas' state is the background check's last verdict, not a query of each.
    replicas = context.reads.report()
    try:
        await context.db.ping()
    except Exception:
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "replicas": replicas},
            status_code=503,
        )
    degraded = any(replica["state"] != "ok" for replica in replicas)
    return JSONResponse(
        {"status": "degraded" if degraded else "ok", "database": "ok", "replicas": replicas}
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        401: {"description": "SLOTEASE_METRICS_TOKEN is set and was not presented"},
        403: {"description": "No metrics token is set and the caller's address is public"},
    },
)
async def metrics(request: Request, context: ContextDep, address: ClientAddressDep) -> Response:
    refusal = scrape_refusal(
        context.settings.metrics_token, request.headers.get("authorization"), address
    )
    if refusal is not None:
        return refusal.response()
    body = context.metrics.exposition()
    body += monitoring.exposition([monitoring.websocket_gauge(context.realtime.hub.connections)])
    try:
        async with context.db.transaction(ANONYMOUS) as conn:
            body += monitoring.exposition(await monitoring.database_gauges(conn))
    except Exception:
        # The process figures are still worth a scrape while the database is away.
        log.warning("database gauges unavailable for /metrics", exc_info=True)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
