"""The analytics dashboard at scale: analytics_events and appointments seeded over monthly
partitions, the materialized views refreshed (each timed), then
`GET /v1/analytics/organization/{id}/dashboard`:

1. Server side: the analytics service called in-process on a pooled connection acting as an
   org admin, for today (live figures from the base tables) and for a past day (history from
   the views): p50/p95 over many calls.
2. Through the API (HTTP, one process) with wrk, 20 connections.
3. EXPLAIN (ANALYZE, COSTS OFF) of every statement the dashboard runs, captured from a real
   call: the date-bounded reads touch only the partitions of their window.

    .venv/bin/python -m bench.dashboard [--events 10000000] [--appointments 2000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.abc import Params

from bench.common import (
    app_role_conninfo,
    drop_database,
    fresh_database,
    indexes_deferred,
    machine,
    percentile,
    wrk,
)
from bench.server import BENCH_JWT_SECRET, api_server
from slotease.analytics import service as analytics
from slotease.auth.tokens import mint_access_token
from slotease.db.database import Connection, Database, DbIdentity

ZONE = "Europe/Paris"
ORGANIZATIONS = 20
SERVICES_PER_ORG = 5
CUSTOMERS = 5_000
VIEWS = (
    "service_performance",
    "organization_stats",
    "user_activity_summary",
)


def seed(owner: str, events: int, appointments: int) -> tuple[uuid.UUID, uuid.UUID]:
    """Organizations with services and an admin each, customers, appointments over 24 months
    and events over the last 12; returns the first organization and its admin."""
    started = time.perf_counter()

    def phase(name: str) -> None:
        print(f"  seeding: {name} at {time.perf_counter() - started:.0f} s", flush=True)

    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("select app.ensure_monthly_partitions('public.appointments', 12, 11)")
        conn.execute("select app.ensure_monthly_partitions('public.analytics_events', 12, 1)")
        conn.execute(
            "insert into public.organizations (name, slug, kind, timezone)"
            " select 'Bench clinic ' || g, 'bench-clinic-' || g, 'clinic', %s"
            " from generate_series(1, %s) g",
            (ZONE, ORGANIZATIONS),
        )
        conn.execute(
            "insert into public.services (organization_id, name, duration_minutes, capacity,"
            " slot_interval_minutes) select o.id, 'Service ' || s, 30, 4, 30"
            " from public.organizations o, generate_series(1, %s) s",
            (SERVICES_PER_ORG,),
        )
        conn.execute(
            "insert into public.service_working_hours (organization_id, service_id, weekday,"
            " start_time, end_time) select s.organization_id, s.id, d, '08:00', '18:00'"
            " from public.services s, generate_series(0, 6) d"
        )
        conn.execute(
            "insert into auth.users (email) select 'admin' || g || '@bench.test'"
            " from generate_series(1, %s) g",
            (ORGANIZATIONS,),
        )
        conn.execute(
            "insert into public.organization_members (organization_id, user_id, role)"
            " select o.id, u.id, 'admin' from"
            " (select id, row_number() over (order by slug) n from public.organizations) o"
            " join (select id, row_number() over (order by email) n from auth.users) u"
            "   on u.n = o.n"
        )
        conn.execute(
            "insert into auth.users (email) select 'customer' || g || '@bench.test'"
            " from generate_series(1, %s) g",
            (CUSTOMERS,),
        )
        # Seeding is not what is measured: bulk rows skip the triggers (capacity, audit, the
        # events the database records for each appointment) and go into unindexed tables.
        conn.execute("set session_replication_role = replica")
        with indexes_deferred(conn, ["public.appointments", "public.analytics_events"]):
            conn.execute(
                """
                with services as (
                  select array_agg(id order by id) ids, array_agg(organization_id order by id) orgs
                  from public.services),
                customers as (
                  select array_agg(id) ids from auth.users where email like 'customer%%'),
                base as (
                  select date_trunc('month', now()) - interval '12 months' as first,
                         -- half-hour steps in 24 months
                         24 * 30 * 20 as steps)
                insert into public.appointments (organization_id, service_id, customer_id,
                                                 starts_at, ends_at, status)
                select s.orgs[(1 + g %% cardinality(s.ids))::int],
                       s.ids[(1 + g %% cardinality(s.ids))::int],
                       c.ids[(1 + g %% cardinality(c.ids))::int], t, t + interval '30 minutes',
                       case when t >= now() then 'booked'
                            when g %% 10 = 0 then 'cancelled'
                            when g %% 17 = 0 then 'no_show'
                            else 'completed' end
                from services s, customers c, base b, generate_series(1, %(n)s::bigint) g,
                     lateral (select b.first + interval '6 hours'
                                     + ((g * 7919) %% b.steps) / 20 * interval '1 day'
                                     + ((g * 7919) %% 20) * interval '30 minutes' as t) x
                """,
                {"n": appointments},
            )
            conn.execute(
                """
                with orgs as (select array_agg(id) ids from public.organizations),
                customers as (
                  select array_agg(id) ids from auth.users where email like 'customer%%')
                insert into public.analytics_events (organization_id, user_id, event_type,
                                                     properties, occurred_at)
                select o.ids[(1 + g %% cardinality(o.ids))::int],
                       c.ids[(1 + g %% cardinality(c.ids))::int],
                       (array['page.viewed', 'slot.searched', 'booking.started',
                              'booking.completed'])[(1 + g %% 4)::int],
                       jsonb_build_object('source', case when g %% 3 = 0 then 'app' else 'web' end),
                       now() - ((g * 7919) %% (365 * 24 * 60)) * interval '1 minute'
                from orgs o, customers c, generate_series(1, %(n)s::bigint) g
                """,
                {"n": events},
            )
            phase("rows inserted")
        phase("indexes built")
        org, admin = conn.execute(
            "select m.organization_id, m.user_id from public.organization_members m"
            " join public.organizations o on o.id = m.organization_id order by o.slug limit 1"
        ).fetchone()  # type: ignore[misc]
        # Today's walk-ins of the measured organization, for the live queue figures.
        queue = conn.execute(
            "insert into public.queues (organization_id, name, prefix)"
            " values (%s, 'Reception', 'R') returning id",
            (org,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into public.tickets (organization_id, queue_id, service_date, number,"
            " status, actual_wait_minutes, serving_at, finished_at)"
            " select %s, %s, (now() at time zone %s)::date, g,"
            "  case when g > 150 then 'waiting' else 'served' end,"
            "  case when g <= 150 then g %% 25 end,"
            "  case when g <= 150 then now() - interval '20 minutes' end,"
            "  case when g <= 150 then now() - interval '8 minutes' end"
            " from generate_series(1, 200) g",
            (org, queue, ZONE),
        )
        conn.execute("set session_replication_role = origin")
        conn.execute("select app.rebuild_daily_rollups(id) from public.organizations")
        phase("rollups rebuilt")
        conn.execute("vacuum analyze")
        phase("vacuum analyze")
        counts = conn.execute(
            "select (select count(*) from public.appointments),"
            " (select count(distinct tableoid) from public.appointments),"
            " (select count(*) from public.analytics_events),"
            " (select count(distinct tableoid) from public.analytics_events)"
        ).fetchone()
    assert counts is not None
    print(
        f"seeded {counts[0]:,} appointments in {counts[1]} partitions and {counts[2]:,} events"
        f" in {counts[3]} partitions in {time.perf_counter() - started:.0f} s"
    )
    return org, admin


def refresh_views(owner: str) -> dict[str, float]:
    """Seconds per view, refreshed CONCURRENTLY as the maintenance job does."""
    timings = {}
    with psycopg.connect(owner, autocommit=True) as conn:
        for view in VIEWS:
            started = time.perf_counter()
            conn.execute(f"refresh materialized view concurrently app.{view}")
            timings[view] = time.perf_counter() - started
    return timings


class Recorder:
    """A connection that keeps every statement it runs, to explain them afterwards."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Params | None]] = []

    async def execute(
        self, query: str | sql.SQL | sql.Composed, params: Params | None = None
    ) -> Any:
        # Some statements are composed (psycopg.sql): kept as the text the server receives.
        text = query if isinstance(query, str) else query.as_string(self.conn)
        self.statements.append((text, params))
        return await self.conn.execute(query, params)


def admin_identity(admin: uuid.UUID) -> DbIdentity:
    return DbIdentity(role="authenticated", claims={"sub": str(admin), "role": "authenticated"})


async def server_side(
    owner: str, org: uuid.UUID, admin: uuid.UUID, calls: int
) -> tuple[dict[str, list[float]], list[str]]:
    """Timings of `calls` dashboards for today and for a past day, and the plans of each
    day's statements."""
    db = Database(app_role_conninfo(owner), min_size=1, max_size=1)
    await db.open()
    identity = admin_identity(admin)
    today = datetime.now(ZoneInfo(ZONE)).date()
    days: dict[str, date] = {"today (live)": today, "60 days ago (history)": today - timedelta(60)}
    timings: dict[str, list[float]] = {}
    plans: list[str] = []
    try:
        for label, day in days.items():
            timings[label] = []
            for i in range(calls + 20):
                started = time.perf_counter()
                async with db.transaction(identity) as conn:
                    board = await analytics.dashboard(conn, org, day)
                if i >= 20:  # the first calls warm the plan caches
                    timings[label].append((time.perf_counter() - started) * 1000)
            assert board.appointments_total > 0, f"{label}: the day should have appointments"
            async with db.transaction(identity) as conn:
                recorder = Recorder(conn)
                await analytics.dashboard(cast(Connection, recorder), org, day)
                for query, params in recorder.statements:
                    cursor = await conn.execute("explain (analyze, costs off) " + query, params)
                    lines = [row["QUERY PLAN"] for row in await cursor.fetchall()]
                    plans.append(f"-- {label}\n{query}\n" + "\n".join(lines))
    finally:
        await db.close()
    return timings, plans


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--appointments", type=int, default=2_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database", default="slotease_bench_dashboard")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    owner = fresh_database(args.database)
    org, admin = seed(owner, args.events, args.appointments)
    refreshes = refresh_views(owner)
    timings, plans = asyncio.run(server_side(owner, org, admin, args.calls))
    token = mint_access_token(
        BENCH_JWT_SECRET, user_id=admin, email="a@bench.test", ttl_seconds=7200
    )
    path = f"/v1/analytics/organization/{org}/dashboard"
    peer = f"/v1/organizations/{org}"
    with api_server(owner) as url:
        headers = {"Authorization": f"Bearer {token}"}
        wrk("warm-up", url + path, connections=10, seconds=2, headers=headers)
        # One connection shows a request's own latency; 20 show it queued behind the others
        # on the two cores.
        # The peer: the organization itself (one short statement) as the same admin, to
        # tell the dashboard's own cost from what every authenticated request pays.
        api = [
            wrk(f"API: {name}, {n} connection(s)", url + target, connections=n,
                seconds=args.seconds, headers=headers)
            for n in (1, 20)
            for name, target in (("dashboard, today", path), ("peer: organization", peer))
        ]  # fmt: skip

    print(f"Machine: {machine()}")
    print("| materialized view | refresh (s) |")
    print("|---|---|")
    for view, seconds in refreshes.items():
        print(f"| app.{view} | {seconds:.2f} |")
    print(f"| all | {sum(refreshes.values()):.2f} |")
    print(f"\nServer side, in-process, {args.calls} calls each:")
    for label, values in timings.items():
        print(
            f"  {label}: p50 {statistics.median(values):.2f} ms,"
            f" p95 {percentile(values, 0.95):.2f} ms"
        )
    print("\n| side | requests/s | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    for stats in api:
        print(stats.row())
    print("\nPlans of the dashboard's statements:\n")
    print("\n\n".join(plans))
    if not args.keep:
        drop_database(args.database)


if __name__ == "__main__":
    main()
