"""Analytics rules: who may see what, live today and history from the views, forecasts,
and report generation."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from psycopg import errors

from slotease.analytics import forecast as model
from slotease.analytics import repository as repo
from slotease.analytics.reports import render
from slotease.analytics.schemas import (
    Dashboard,
    EventCreate,
    ForecastPoint,
    Metric,
    Performance,
    Report,
    ReportCreate,
    SeriesPoint,
    ServiceFigures,
    StaffFigures,
    Trends,
)
from slotease.appointments.slots import day_window
from slotease.auth.principal import Principal
from slotease.db.database import SERVICE, Connection, Database
from slotease.kit.events import on_commit
from slotease.kit.problems import Conflict, Forbidden, NotFound, Unprocessable

log = logging.getLogger(__name__)

MAX_TREND_DAYS = 366
MAX_FORECAST_DAYS = 60
# Reports whose generation was lost (a restart between commit and run) are picked up by
# maintenance once they have waited this long.
STALE_REPORT = timedelta(minutes=10)
# Background generations in flight: a reference keeps each task alive until it finishes.
_generating: set[asyncio.Task[None]] = set()


async def record_event(conn: Connection, principal: Principal, payload: EventCreate) -> None:
    try:
        await repo.insert_event(
            conn, payload.organization_id, principal.user_id, payload.event_type, payload.properties
        )
    except errors.InsufficientPrivilege:
        raise Forbidden("An API key records events for its own organization only.") from None


async def _organization(conn: Connection, organization_id: UUID, *, admin: bool) -> ZoneInfo:
    """The organization's timezone, for its members (admins when `admin`); 404 for anyone who
    does not belong to it, 403 for staff asking for admin figures."""
    row = await repo.access(conn, organization_id)
    if row is None or not row["member"]:
        raise NotFound("No such organization.")
    if admin and not row["admin"]:
        raise Forbidden("Only the organization's admins may read these figures.")
    return ZoneInfo(row["timezone"])


def _ratio(total: float, count: float) -> float | None:
    return round(total / count, 2) if count else None


async def dashboard(conn: Connection, organization_id: UUID, day: date | None) -> Dashboard:
    zone = await _organization(conn, organization_id, admin=False)
    today = datetime.now(zone).date()
    day = day or today
    live = day >= today
    if live:
        window = day_window(day, day, zone)
        appointments = await repo.live_appointments(
            conn, organization_id, window.starts_at, window.ends_at
        )
        tickets = await repo.live_tickets(conn, organization_id, day)
    else:
        appointments = await repo.history_appointments(conn, organization_id, day)
        tickets = await repo.history_tickets(conn, organization_id, day)
    offered = await repo.offered_minutes(conn, organization_id, day.weekday())
    return Dashboard(
        date=day,
        appointments_total=appointments["total"],
        completed=appointments["completed"],
        cancelled=appointments["cancelled"],
        no_shows=appointments["no_show"],
        waiting_now=tickets["waiting"] if day == today else 0,
        avg_wait_minutes=_ratio(tickets["wait_minutes_sum"], tickets["waits"]),
        avg_service_minutes=_ratio(tickets["service_minutes_sum"], tickets["services"]),
        utilization=round(appointments["booked_minutes"] / offered, 4) if offered else None,
        rating_avg=_ratio(appointments["rating_sum"], appointments["ratings"]),
        source="live" if live else "history",
    )


def _check_range(from_day: date, to_day: date) -> None:
    if from_day > to_day:
        raise Unprocessable("`from` must not be after `to`.")
    if (to_day - from_day).days >= MAX_TREND_DAYS:
        raise Unprocessable(f"A range covers at most {MAX_TREND_DAYS} days.")


async def performance(
    conn: Connection, organization_id: UUID, from_day: date, to_day: date
) -> Performance:
    _check_range(from_day, to_day)
    zone = await _organization(conn, organization_id, admin=True)
    window = day_window(from_day, to_day, zone)
    services = await repo.service_performance(conn, organization_id, from_day, to_day)
    staff = await repo.staff_performance(conn, organization_id, window.starts_at, window.ends_at)
    return Performance(
        organization_id=organization_id,
        from_date=from_day,
        to_date=to_day,
        services=[ServiceFigures(**row) for row in services],
        staff=[StaffFigures(**row) for row in staff],
    )


async def trends(
    conn: Connection,
    organization_id: UUID,
    metric: Metric,
    from_day: date,
    to_day: date,
    forecast_days: int,
) -> Trends:
    _check_range(from_day, to_day)
    if not 0 <= forecast_days <= MAX_FORECAST_DAYS:
        raise Unprocessable(f"`forecast_days` is between 0 and {MAX_FORECAST_DAYS}.")
    await _organization(conn, organization_id, admin=True)
    values = await repo.daily_series(conn, organization_id, metric, from_day, to_day)
    days = [from_day + timedelta(days=i) for i in range((to_day - from_day).days + 1)]
    # A day without rows had none of a count; an average over nothing stays unknown.
    empty = None if metric == "avg_wait_minutes" else 0.0
    series = [SeriesPoint(date=day, value=values.get(day, empty)) for day in days]
    known = [(p.date, p.value) for p in series if p.value is not None]
    # The weekday model needs consecutive days: an average series with gaps gets no forecast.
    predicted = model.forecast(known, forecast_days) if len(known) == len(series) else []
    return Trends(
        metric=metric,
        series=series,
        forecast=[
            ForecastPoint(date=p.day, value=p.value, lower=p.lower, upper=p.upper)
            for p in predicted
        ],
    )


# Reports ------------------------------------------------------------------------------------


def _report(row: repo.Row) -> Report:
    ready = row["status"] == "ready"
    return Report(
        **row,
        download_url=f"/v1/analytics/report/{row['id']}/download" if ready else None,
    )


async def request_report(
    conn: Connection, db: Database, principal: Principal, payload: ReportCreate
) -> Report:
    await _organization(conn, payload.organization_id, admin=True)
    row = await repo.insert_report(
        conn,
        payload.organization_id,
        principal.user_id,
        payload.kind,
        payload.format,
        payload.from_date,
        payload.to_date,
    )

    async def start() -> None:
        task = asyncio.create_task(generate_report(db, row["id"]))
        _generating.add(task)
        task.add_done_callback(_generating.discard)

    on_commit(start)
    return _report(row)


async def get_report(conn: Connection, report_id: UUID) -> Report:
    row = await repo.get_report(conn, report_id)
    if row is None:
        raise NotFound("No such report.")
    return _report(row)


async def download(conn: Connection, report_id: UUID) -> tuple[bytes, str, str]:
    """The report's bytes, content type and file name; 409 while it is not ready."""
    row = await repo.report_content(conn, report_id)
    if row is None:
        raise NotFound("No such report.")
    if row["status"] != "ready":
        raise Conflict(f"The report is {row['status']}.")
    return bytes(row["content"]), row["content_type"], f"{row['kind']}-{report_id}.{row['format']}"


async def generate_report(db: Database, report_id: UUID) -> None:
    """Fill in a pending report, as the system; a failure is stored on the report."""
    async with db.transaction(SERVICE) as conn:
        report = await repo.get_report(conn, report_id)
        if report is None or report["status"] != "pending":
            return
        title = (
            f"{report['kind'].capitalize()} report,"
            f" {report['from_date']:%Y-%m-%d} to {report['to_date']:%Y-%m-%d}"
        )
        try:
            # A savepoint, so that a failed read still lets the failure be recorded.
            async with conn.transaction():
                rows = await repo.report_rows(
                    conn, report["kind"], report["organization_id"], report["from_date"],
                    report["to_date"],
                )  # fmt: skip
            content, content_type = render(report["kind"], report["format"], title, rows)
        except Exception:
            log.exception("report %s failed", report_id)
            await repo.finish_report(
                conn, report_id, content=None, content_type=None, error="generation failed"
            )
            return
        await repo.finish_report(
            conn, report_id, content=content, content_type=content_type, error=None
        )


async def generate_stale_reports(db: Database) -> int:
    """Generate the reports left pending (lost to a restart); returns how many."""
    async with db.transaction(SERVICE) as conn:
        stale = await repo.pending_reports(conn, datetime.now(UTC) - STALE_REPORT)
    for report in stale:
        await generate_report(db, report["id"])
    return len(stale)
