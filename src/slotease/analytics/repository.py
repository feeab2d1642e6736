"""All SQL of analytics. Today's figures read the base tables and daily figures the rollups
that triggers keep in the writer's transaction (migration 0014), both as the caller (RLS
applies); the reports' generator reads the rollups as the system."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row
from slotease.kit import crypto
from slotease.kit.dberrors import INSUFFICIENT_PRIVILEGE, refusals
from slotease.kit.problems import Forbidden, NotFound, Problem

# The domain's own event types, written only by the database's triggers: the insert policy
# of migration 0012 refuses them to the API; here they only pick the answer to its refusal.
SYSTEM_EVENT_PREFIXES = ("appointment.", "ticket.", "queue.", "notification.")


async def insert_event(
    conn: Connection,
    organization_id: UUID | None,
    user_id: UUID | None,
    event_type: str,
    properties: dict[str, Any],
) -> None:
    def refused(_: object) -> Problem:
        if event_type.startswith(SYSTEM_EVENT_PREFIXES):
            return Forbidden(f"{event_type} events are recorded by the system.")
        # Otherwise the caller is no member of the organization: as if it did not exist.
        return NotFound("No such organization.")

    # An API key without an organization records for its own.
    with refusals({INSUFFICIENT_PRIVILEGE: refused}):
        await conn.execute(
            "insert into public.analytics_events (organization_id, user_id, event_type, properties)"
            " values (coalesce(%(org)s, (select g.organization_id from app.api_key_grant() g"
            " where %(user)s::uuid is null limit 1)), %(user)s, %(type)s, %(props)s)",
            {
                "org": organization_id,
                "user": user_id,
                "type": event_type,
                "props": Jsonb(properties),
            },
        )


async def live_appointments(
    conn: Connection, organization_id: UUID, starts: datetime, ends: datetime
) -> Row:
    return await fetch_row(
        conn,
        "select count(*)::integer as total,"
        " (count(*) filter (where a.status = 'completed'))::integer as completed,"
        " (count(*) filter (where a.status = 'cancelled'))::integer as cancelled,"
        " (count(*) filter (where a.status = 'no_show'))::integer as no_show,"
        " coalesce(sum(extract(epoch from a.ends_at - a.starts_at) / 60)"
        "   filter (where a.status <> 'cancelled'), 0)::float8 as booked_minutes,"
        " count(f.rating)::integer as ratings, coalesce(sum(f.rating), 0)::integer as rating_sum"
        " from public.appointments a"
        " left join public.feedback f"
        "   on f.appointment_id = a.id and f.organization_id = a.organization_id"
        " where a.organization_id = %(organization_id)s and a.starts_at >= %(starts)s and"
        " a.starts_at < %(ends)s",
        {"organization_id": organization_id, "starts": starts, "ends": ends},
    )


async def live_tickets(conn: Connection, organization_id: UUID, day: date) -> Row:
    return await fetch_row(
        conn,
        "select (count(*) filter (where t.status = 'waiting'))::integer as waiting,"
        " count(t.actual_wait_minutes)::integer as waits,"
        " coalesce(sum(t.actual_wait_minutes), 0)::float8 as wait_minutes_sum,"
        " (count(*) filter (where t.status = 'served' and t.serving_at is not null))::integer"
        "   as services,"
        " coalesce(sum(extract(epoch from t.finished_at - t.serving_at) / 60)"
        "   filter (where t.status = 'served' and t.serving_at is not null), 0)::float8"
        "   as service_minutes_sum"
        " from public.tickets t where t.organization_id = %(organization_id)s and t.service_date"
        " = %(day)s",
        {"organization_id": organization_id, "day": day},
    )


async def history_appointments(conn: Connection, organization_id: UUID, day: date) -> Row:
    return await fetch_row(
        conn,
        "select coalesce(sum(total), 0)::integer as total,"
        " coalesce(sum(completed), 0)::integer as completed,"
        " coalesce(sum(cancelled), 0)::integer as cancelled,"
        " coalesce(sum(no_show), 0)::integer as no_show,"
        " coalesce(sum(booked_minutes), 0)::float8 as booked_minutes,"
        " coalesce(sum(ratings), 0)::integer as ratings,"
        " coalesce(sum(rating_sum), 0)::integer as rating_sum"
        " from public.analytics_daily_service where organization_id = %(organization_id)s and day"
        " = %(day)s",
        {"organization_id": organization_id, "day": day},
    )


async def history_tickets(conn: Connection, organization_id: UUID, day: date) -> Row:
    return await fetch_row(
        conn,
        "select 0 as waiting, coalesce(sum(waits), 0)::integer as waits,"
        " coalesce(sum(wait_minutes_sum), 0)::float8 as wait_minutes_sum,"
        " coalesce(sum(services), 0)::integer as services,"
        " coalesce(sum(service_minutes_sum), 0)::float8 as service_minutes_sum"
        " from public.analytics_daily_queue where organization_id = %(organization_id)s and day ="
        " %(day)s",
        {"organization_id": organization_id, "day": day},
    )


async def offered_minutes(conn: Connection, organization_id: UUID, weekday: int) -> float:
    """Capacity-minutes the active services offer on a weekday (0 = Monday)."""
    row = await fetch_row(
        conn,
        "select coalesce(sum(extract(epoch from h.end_time - h.start_time) / 60 * s.capacity),"
        " 0)::float8 as minutes"
        " from public.services s join public.service_working_hours h on h.service_id = s.id"
        " where s.organization_id = %(organization_id)s and s.is_active and h.weekday ="
        " %(weekday)s",
        {"organization_id": organization_id, "weekday": weekday},
    )
    return float(row["minutes"])


# Daily series by metric: the rollup that serves it and the value of one day.
_SERIES = {
    "appointments": ("analytics_daily_service", "sum(total)::float8"),
    "completed": ("analytics_daily_service", "sum(completed)::float8"),
    "cancellations": ("analytics_daily_service", "sum(cancelled)::float8"),
    "no_shows": ("analytics_daily_service", "sum(no_show)::float8"),
    "tickets_served": ("analytics_daily_queue", "sum(served)::float8"),
    "avg_wait_minutes": (
        "analytics_daily_queue",
        "(sum(wait_minutes_sum) / nullif(sum(waits), 0))::float8",
    ),
}
METRICS = tuple(_SERIES)


async def daily_series(
    conn: Connection, organization_id: UUID, metric: str, from_day: date, to_day: date
) -> dict[date, float | None]:
    table, value = _SERIES[metric]
    cursor = await conn.execute(
        f"select day, {value} as value from public.{table}"
        " where organization_id = %(organization_id)s and day between %(from_day)s and %(to_day)s"
        " group by day",
        {"organization_id": organization_id, "from_day": from_day, "to_day": to_day},
    )
    return {row["day"]: row["value"] for row in await cursor.fetchall()}


async def service_performance(
    conn: Connection, organization_id: UUID, from_day: date, to_day: date
) -> list[Row]:
    cursor = await conn.execute(
        "select d.service_id, s.name,"
        " sum(d.total)::integer as appointments, sum(d.completed)::integer as completed,"
        " sum(d.cancelled)::integer as cancelled, sum(d.no_show)::integer as no_shows,"
        " sum(d.booked_minutes)::float8 as booked_minutes,"
        " (sum(d.rating_sum)::float8 / nullif(sum(d.ratings), 0)) as rating_avg"
        " from public.analytics_daily_service d"
        " left join public.services s"
        "   on s.id = d.service_id and s.organization_id = d.organization_id"
        " where d.organization_id = %(organization_id)s and d.day between %(from_day)s and"
        " %(to_day)s"
        " group by d.service_id, s.name order by appointments desc, s.name",
        {"organization_id": organization_id, "from_day": from_day, "to_day": to_day},
    )
    return await cursor.fetchall()


# Figure of the staff answer: the event it counts.
STAFF_EVENTS = {
    "appointments_checked_in": "appointment.checked_in",
    "appointments_completed": "appointment.completed",
    "appointments_no_show": "appointment.no_show",
    "tickets_called": "ticket.called",
    "tickets_served": "ticket.served",
    "tickets_no_show": "ticket.no_show",
}


async def staff_performance(
    conn: Connection, organization_id: UUID, starts: datetime, ends: datetime
) -> list[Row]:
    """What each member of the organization did, from the events the triggers record with the
    actor; read as the caller, so only an admin of the organization sees any."""
    counts = ", ".join(
        f"(count(*) filter (where e.event_type = '{event}'))::integer as {column}"
        for column, event in STAFF_EVENTS.items()
    )
    return await fetch_all(
        conn,
        f"select e.user_id, p.full_name, {counts},"
        " avg((e.properties ->> 'service_minutes')::float8)"
        "   filter (where e.event_type = 'ticket.served') as avg_service_minutes"
        " from public.analytics_events e"
        " join public.organization_members m"
        "   on m.organization_id = e.organization_id and m.user_id = e.user_id"
        " left join public.user_profiles p on p.user_id = e.user_id"
        " where e.organization_id = %(org)s and e.occurred_at >= %(starts)s"
        "   and e.occurred_at < %(ends)s and e.event_type = any(%(events)s)"
        " group by e.user_id, p.full_name order by p.full_name, e.user_id",
        {
            "org": organization_id,
            "starts": starts,
            "ends": ends,
            "events": list(STAFF_EVENTS.values()),
        },
    )


async def organization_stats(conn: Connection, organization_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        "select members, active_services, active_queues, appointments_total,"
        " appointments_last_30_days, customers, tickets_total, rating_avg"
        " from app.analytics_organization_stats(%(organization_id)s)",
        {"organization_id": organization_id},
    )


# Reports ------------------------------------------------------------------------------------

_REPORT_COLUMNS = (
    "id, organization_id, kind, format, from_date, to_date, status, content_type, error,"
    " created_at, finished_at"
)


async def insert_report(
    conn: Connection,
    organization_id: UUID,
    requested_by: UUID | None,
    kind: str,
    report_format: str,
    from_day: date,
    to_day: date,
) -> Row:
    return await fetch_row(
        conn,
        "insert into public.analytics_reports"
        " (organization_id, requested_by, kind, format, from_date, to_date)"
        f" values (%(organization_id)s, %(requested_by)s, %(kind)s, %(report_format)s,"
        f" %(from_day)s, %(to_day)s) returning {_REPORT_COLUMNS}",
        {
            "organization_id": organization_id,
            "requested_by": requested_by,
            "kind": kind,
            "report_format": report_format,
            "from_day": from_day,
            "to_day": to_day,
        },
    )


async def get_report(conn: Connection, report_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        f"select {_REPORT_COLUMNS} from public.analytics_reports where id = %(report_id)s",
        {"report_id": report_id},
    )


async def report_content(conn: Connection, report_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        "select status, format, kind, content_type, content from public.analytics_reports"
        " where id = %(report_id)s",
        {"report_id": report_id},
    )


async def finish_report(
    conn: Connection,
    report_id: UUID,
    *,
    content: bytes | None,
    content_type: str | None,
    error: str | None,
) -> None:
    await conn.execute(
        "update public.analytics_reports set status = %(status)s, content = %(content)s,"
        " content_type = %(content_type)s, error = %(error)s, finished_at = now()"
        " where id = %(id)s and status = 'pending'",
        {
            "status": "failed" if error else "ready",
            "content": content,
            "content_type": content_type,
            "error": error,
            "id": report_id,
        },
    )


# What each kind of report lists, per day: read by the generator (service_role) from the
# rollups, so nothing personal goes into a report but feedback comments.
_REPORT_ROWS = {
    "appointments": (
        "select d.day, s.name as service, d.total, d.completed, d.cancelled, d.no_show,"
        " round(d.booked_minutes, 1)::float8 as booked_minutes,"
        " round(d.rating_sum::numeric / nullif(d.ratings, 0), 2)::float8 as rating_avg"
        " from public.analytics_daily_service d"
        " left join public.services s"
        "   on s.id = d.service_id and s.organization_id = d.organization_id"
        " where d.organization_id = %(org)s and d.day between %(from_day)s and %(to_day)s"
        " order by d.day, s.name"
    ),
    "queues": (
        "select d.day, q.name as queue, d.tickets, d.served, d.no_show, d.cancelled,"
        " round(d.wait_minutes_sum / nullif(d.waits, 0), 1)::float8 as avg_wait_minutes,"
        " round(d.service_minutes_sum / nullif(d.services, 0), 1)::float8"
        "   as avg_service_minutes,"
        " round(d.estimate_error_sum / nullif(d.estimates, 0), 1)::float8"
        "   as estimate_error_minutes"
        " from public.analytics_daily_queue d"
        " left join public.queues q on q.id = d.queue_id and q.organization_id = d.organization_id"
        " where d.organization_id = %(org)s and d.day between %(from_day)s and %(to_day)s"
        " order by d.day, q.name"
    ),
    "feedback": (
        "select (a.starts_at at time zone o.timezone)::date as day, s.name as service,"
        " f.rating, f.comment, f.appointment_id"
        " from public.feedback f"
        " join public.appointments a on a.id = f.appointment_id"
        "   and a.starts_at = f.appointment_starts_at and a.organization_id = f.organization_id"
        " join public.organizations o on o.id = f.organization_id"
        " left join public.services s"
        "   on s.id = f.service_id and s.organization_id = f.organization_id"
        " where f.organization_id = %(org)s"
        "   and (a.starts_at at time zone o.timezone)::date between %(from_day)s and %(to_day)s"
        " order by day, service"
    ),
}


async def report_rows(
    conn: Connection, kind: str, organization_id: UUID, from_day: date, to_day: date
) -> tuple[list[str], list[Row]]:
    """The report's column names (known even when no row matches) and its rows."""
    cursor = await conn.execute(
        _REPORT_ROWS[kind], {"org": organization_id, "from_day": from_day, "to_day": to_day}
    )
    rows = await cursor.fetchall()
    columns = [column.name for column in cursor.description or ()]
    if kind != "feedback":
        return columns, rows
    # The appointment a comment is sealed to opens it, and is no column of the report.
    columns.remove("appointment_id")
    return columns, [
        {
            **{name: row[name] for name in columns},
            "comment": crypto.decrypt_optional(
                row["comment"], context=crypto.field_context(crypto.COMMENT, row["appointment_id"])
            ),
        }
        for row in rows
    ]
