"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from slotease.auth.deps import ContextDep

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "The database is unreachable"}})
async def ready(context: ContextDep) -> JSONResponse:
    try:
        await context.db.ping()
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(context: ContextDep) -> Response:
    return Response(context.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
