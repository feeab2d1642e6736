"""HTTP routes of analytics: event tracking, dashboards, trends and reports."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response

from slotease.analytics import service
from slotease.analytics.reports import CONTENT_TYPES
from slotease.analytics.schemas import (
    Accepted,
    Dashboard,
    EventCreate,
    Metric,
    Performance,
    Report,
    ReportAccepted,
    ReportCreate,
    Trends,
)
from slotease.auth.deps import DbDep, ReadDbDep, SignedIn

router = APIRouter(prefix="/analytics", tags=["analytics"])

FromDay = Annotated[date, Query(alias="from", description="First local date, inclusive.")]
ToDay = Annotated[date, Query(alias="to", description="Last local date, inclusive.")]


@router.post("/event", status_code=202)
async def record_event(body: EventCreate, principal: SignedIn, conn: DbDep) -> Accepted:
    await service.record_event(conn, principal, body)
    return Accepted()


@router.get("/organization/{organization_id}/dashboard")
async def dashboard(
    organization_id: UUID,
    _: SignedIn,
    conn: ReadDbDep,
    day: Annotated[
        date | None,
        Query(alias="date", description="A local date; today in the organization by default."),
    ] = None,
) -> Dashboard:
    return await service.dashboard(conn, organization_id, day)


@router.get(
    "/organization/{organization_id}/performance",
    responses={403: {"description": "Only the organization's admins read these figures."}},
)
async def performance(
    organization_id: UUID, _: SignedIn, conn: ReadDbDep, from_day: FromDay, to_day: ToDay
) -> Performance:
    return await service.performance(conn, organization_id, from_day, to_day)


@router.get(
    "/organization/{organization_id}/trends",
    responses={403: {"description": "Only the organization's admins read these figures."}},
)
async def trends(
    organization_id: UUID,
    _: SignedIn,
    conn: ReadDbDep,
    metric: Metric,
    from_day: FromDay,
    to_day: ToDay,
    forecast_days: Annotated[int, Query(ge=0, le=service.MAX_FORECAST_DAYS)] = 0,
) -> Trends:
    return await service.trends(conn, organization_id, metric, from_day, to_day, forecast_days)


@router.post("/report", status_code=202)
async def request_report(body: ReportCreate, principal: SignedIn, conn: DbDep) -> ReportAccepted:
    report = await service.request_report(conn, principal, body)
    return ReportAccepted(report_id=report.id, status=report.status)


@router.get("/report/{report_id}")
async def get_report(report_id: UUID, _: SignedIn, conn: ReadDbDep) -> Report:
    return await service.get_report(conn, report_id)


@router.get(
    "/report/{report_id}/download",
    response_class=Response,
    responses={
        200: {
            "description": "The report, in the format it was requested in.",
            "content": {media: {} for media in CONTENT_TYPES.values()},
        },
        409: {"description": "The report is not ready."},
    },
)
async def download_report(report_id: UUID, _: SignedIn, conn: ReadDbDep) -> Response:
    content, content_type, filename = await service.download(conn, report_id)
    return Response(
        content,
        media_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
