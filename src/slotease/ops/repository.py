"""All SQL of operations: maintenance through the SECURITY DEFINER entry points of migration
0007, the database figures of /metrics and `slotease db stats`, server settings, and the
platform admins' alert notifications."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg import sql
from psycopg.types.json import Jsonb

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row

# Every range-partitioned table with a timestamptz key (monthly partitions), in our schemas.
_PARTITIONED = (
    "select n.nspname || '.' || c.relname as parent from pg_partitioned_table p"
    " join pg_class c on c.oid = p.partrelid"
    " join pg_namespace n on n.oid = c.relnamespace"
    " join pg_attribute a on a.attrelid = p.partrelid and a.attnum = p.partattrs[0]"
    " where p.partstrat = 'r' and p.partnatts = 1 and not c.relispartition"
    "   and n.nspname in ('public', 'app') and a.atttypid = 'timestamptz'::regtype"
    " order by 1"
)


# Maintenance -----------------------------------------------------------------------------


async def refresh_analytics_views(conn: Connection) -> None:
    await conn.execute("select app.refresh_analytics_views()")


async def partitioned_tables(conn: Connection) -> list[str]:
    return [row["parent"] for row in await fetch_all(conn, _PARTITIONED)]


async def ensure_monthly_partitions(conn: Connection, parent: str, months_ahead: int) -> int:
    """How many monthly partitions `parent` gained, from this month to `months_ahead`."""
    row = await fetch_row(
        conn,
        "select app.ensure_monthly_partitions(%(parent)s::regclass, 0, %(months_ahead)s) as n",
        {"parent": parent, "months_ahead": months_ahead},
    )
    count: int = row["n"]
    return count


async def drop_partitions_before(conn: Connection, table: str, before: datetime) -> list[str]:
    rows = await fetch_all(
        conn,
        "select app.drop_partitions_before(%(table)s::regclass, %(before)s) as name",
        {"table": table, "before": before},
    )
    return [row["name"] for row in rows]


async def anonymize_events(conn: Connection, before: datetime) -> int:
    cursor = await conn.execute(
        "update public.analytics_events set user_id = null"
        " where occurred_at < %(before)s and user_id is not null",
        {"before": before},
    )
    return cursor.rowcount


async def anonymize_appointment_notes(conn: Connection, before: datetime) -> int:
    cursor = await conn.execute(
        "update public.appointments set notes = null where starts_at < %(before)s and notes is"
        " not null",
        {"before": before},
    )
    return cursor.rowcount


async def apply_text_retention(
    conn: Connection,
    *,
    webhook_payloads_before: datetime,
    report_contents_before: datetime,
    notification_bodies_before: datetime,
    feedback_comments_before: datetime,
) -> dict[str, int]:
    row = await fetch_row(
        conn,
        "select app.apply_text_retention("
        " %(webhook_payloads)s, %(report_contents)s, %(notification_bodies)s,"
        " %(feedback_comments)s) as counts",
        {
            "webhook_payloads": webhook_payloads_before,
            "report_contents": report_contents_before,
            "notification_bodies": notification_bodies_before,
            "feedback_comments": feedback_comments_before,
        },
    )
    counts: dict[str, int] = row["counts"]
    return counts


async def analyze_tables(conn: Connection, tables: Sequence[str]) -> None:
    await conn.execute(
        "select app.analyze_tables(%(tables)s::regclass[])", {"tables": list(tables)}
    )


# Monitoring ------------------------------------------------------------------------------


async def table_exists(conn: Connection, name: str) -> bool:
    row = await fetch_one(
        conn, "select to_regclass(%(name)s) is not null as present", {"name": name}
    )
    return bool(row and row["present"])


async def gauge_counts(conn: Connection, top_queues: int) -> list[Row]:
    """(metric, label, n): waiting tickets of the `top_queues` longest queues
    ('waiting_by_queue', by queue id), in all queues ('waiting_total'), and procrastinate's jobs
    by status ('jobs_by_status', every status, zero counts included, so the series exist
    before the first failure). Counts only, through one function of the database."""
    return await fetch_all(
        conn,
        "select metric, label, n from app.metrics_counts(%(top_queues)s)",
        {"top_queues": top_queues},
    )


async def failed_jobs(conn: Connection) -> int:
    """Failed procrastinate jobs; call only when its tables exist."""
    row = await fetch_row(
        conn, "select count(*) as n from public.procrastinate_jobs where status = 'failed'"
    )
    count: int = row["n"]
    return count


async def replication_lag_seconds(conn: Connection) -> float | None:
    row = await fetch_row(
        conn, "select max(extract(epoch from replay_lag))::float8 as lag from pg_stat_replication"
    )
    lag: float | None = row["lag"]
    return lag


async def connections_by_state(conn: Connection) -> list[Row]:
    return await fetch_all(
        conn,
        "select coalesce(state, 'background') as state, count(*) as n from pg_stat_activity"
        " where datname = current_database() or datname is null group by 1 order by 2 desc",
    )


async def max_connections(conn: Connection) -> str | None:
    row = await fetch_one(conn, "show max_connections")
    return row["max_connections"] if row else None


async def has_pg_stat_statements(conn: Connection) -> bool:
    row = await fetch_one(
        conn,
        "select exists (select 1 from pg_extension where extname = 'pg_stat_statements')"
        " as installed",
    )
    return bool(row and row["installed"])


async def slowest_queries(conn: Connection, limit: int) -> list[Row]:
    """By mean time; call only when pg_stat_statements is installed."""
    return await fetch_all(
        conn,
        "select calls, round(mean_exec_time::numeric, 2) as mean_ms,"
        " round(total_exec_time::numeric, 0) as total_ms, left(regexp_replace(query,"
        " '\\s+', ' ', 'g'), 100) as query"
        " from pg_stat_statements order by mean_exec_time desc limit %(limit)s",
        {"limit": limit},
    )


async def largest_tables(conn: Connection, limit: int) -> list[Row]:
    """Our tables by size, with their indexes and partitions."""
    return await fetch_all(
        conn,
        "select n.nspname || '.' || c.relname as name,"
        " pg_size_pretty(coalesce(sum(pg_total_relation_size(p.relid)), 0)) as size"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " cross join lateral pg_partition_tree(c.oid) p"
        " where n.nspname in ('public', 'app', 'auth') and c.relkind in ('r', 'p', 'm')"
        "   and not c.relispartition"
        " group by n.nspname, c.relname order by sum(pg_total_relation_size(p.relid)) desc"
        " limit %(limit)s",
        {"limit": limit},
    )


async def alter_system(conn: Connection, name: str, value: str) -> None:
    """ALTER SYSTEM cannot take parameters: the name is quoted as an identifier, the value as
    a literal. `conn` must be a superuser in autocommit mode."""
    await conn.execute(
        sql.SQL("alter system set {} = {}").format(sql.Identifier(name), sql.Literal(value))
    )


async def reload_configuration(conn: Connection) -> None:
    await conn.execute("select pg_reload_conf()")


async def notify_platform_admins(conn: Connection, key: str, subject: str, body: str) -> None:
    """An in-app `ops.alert` notification for every platform admin, unless the admin got one
    for the same alert `key` within the hour."""
    await conn.execute(
        "insert into public.notifications (user_id, channel, template, subject, body, data)"
        " select p.user_id, 'in_app', 'ops.alert', %(subject)s, %(body)s, %(data)s"
        " from app.platform_admins p"
        " where not exists (select 1 from public.notifications n"
        "   where n.user_id = p.user_id and n.template = 'ops.alert'"
        "   and n.data ->> 'alert' = %(key)s and n.created_at > now() - interval '1 hour')",
        {"subject": subject, "body": body, "data": Jsonb({"alert": key}), "key": key},
    )
