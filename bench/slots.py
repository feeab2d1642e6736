"""Availability at scale: `GET /v1/available-slots` for a 30-day window on a service whose
appointments table holds 1,000,000 rows across 24 monthly partitions.

1. Server side, cache miss: the availability service called in-process on a real pooled
   connection acting as `anon`, with a cache that never hits: p50/p95 over many calls.
2. Through the API (HTTP, one process) with 50 connections, as clients see it (the cache is
   in play), against pgbench running the cache-miss SQL (schedule, closures, busy places)
   with the same client count.
3. What every answer, a cache hit included, pays first: reading the service's availability
   version from the database (one pipelined round trip), p50/p95 over many calls.

    .venv/bin/python -m bench.slots [--rows 1000000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from bench.booking import as_pgbench
from bench.common import app_role_conninfo, fresh_database, machine, percentile, pgbench, wrk
from bench.server import api_server
from slotease.appointments import service as availability
from slotease.appointments.repository import (
    BUSY_SQL,
    CLOSURES_SQL,
    SCHEDULE_SQL,
    availability_version,
)
from slotease.db.database import ANONYMOUS, Database
from slotease.kit.days import day_window

ZONE = ZoneInfo("Europe/Paris")
WINDOW_DAYS = 30


def seed(owner: str, rows: int) -> uuid.UUID:
    """One service with `rows` appointments over 24 months, grid-aligned; past ones completed,
    future ones booked, never above capacity."""
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("select app.ensure_monthly_partitions('public.appointments', 12, 11)")
        org = conn.execute(
            "insert into public.organizations (name, slug, kind, timezone)"
            " values ('Bench clinic', 'bench-clinic', 'clinic', 'Europe/Paris') returning id"
        ).fetchone()[0]  # type: ignore[index]
        service = conn.execute(
            "insert into public.services (organization_id, name, duration_minutes, capacity,"
            " slot_interval_minutes, max_advance_days) values (%s, 'Vaccination', 30, 80, 30, 90)"
            " returning id",
            (org,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into public.service_working_hours (organization_id, service_id, weekday,"
            " start_time, end_time) select %s, %s, d, '08:00', '20:00' from generate_series(0, 6) d",
            (org, service),
        )
        conn.execute(
            "insert into public.service_closures (organization_id, service_id, starts_at, ends_at,"
            " reason) values (%s, %s, now() + interval '10 days', now() + interval '11 days',"
            " 'Public holiday')",
            (org, service),
        )
        customer = conn.execute(
            "insert into auth.users (email) values ('c@bench.test') returning id"
        ).fetchone()[0]  # type: ignore[index]
        # Seeding is not what is measured: bulk rows skip the per-row triggers.
        conn.execute("set session_replication_role = replica")
        conn.execute(
            """
            insert into public.appointments (organization_id, service_id, customer_id, starts_at,
                                             ends_at, status)
            select %(org)s, %(service)s, %(customer)s, t, t + interval '30 minutes',
                   case when t < now() then 'completed' else 'booked' end
            from (
              select slot_start as t
              from generate_series(
                     date_trunc('month', now()) - interval '12 months',
                     date_trunc('month', now()) + interval '12 months' - interval '30 minutes',
                     interval '30 minutes') as slot_start
              where (slot_start at time zone 'Europe/Paris')::time >= '08:00'
                and (slot_start at time zone 'Europe/Paris')::time < '20:00'
            ) slots,
            generate_series(1, %(per_slot)s)
            limit %(rows)s
            """,
            {"org": org, "service": service, "customer": customer, "rows": rows,
             "per_slot": rows // 17000 + 1},
        )  # fmt: skip
        conn.execute("set session_replication_role = origin")
        # The per-slot usage the availability read uses is kept by a trigger skipped above.
        conn.execute("select app.rebuild_slot_usage()")
        conn.execute("vacuum analyze public.appointments")
        count = conn.execute("select count(*) from public.appointments").fetchone()[0]  # type: ignore[index]
        parts = conn.execute("select count(distinct tableoid) from public.appointments").fetchone()[
            0
        ]  # type: ignore[index]
        print(f"seeded {count:,} appointments in {parts} partitions")
    return service


class NeverCache:
    """Every read misses: what the first client after a booking pays."""

    async def get(self, key: str) -> str | None:
        return None

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        return None


async def cache_miss_latency(owner: str, service: uuid.UUID, calls: int) -> list[float]:
    db = Database(app_role_conninfo(owner), min_size=1, max_size=1)
    await db.open()
    first = datetime.now(ZONE).date() + timedelta(days=1)
    timings = []
    try:
        for i in range(calls + 20):
            start_day = first + timedelta(days=i % 7)
            started = time.perf_counter()
            question = await availability.slots_request(
                db, service, start_day, start_day + timedelta(days=WINDOW_DAYS - 1)
            )
            async with db.transaction(ANONYMOUS) as conn:
                answer = await availability.compute_slots_json(conn, NeverCache(), question)
            if i >= 20:  # the first calls warm the plan caches
                timings.append((time.perf_counter() - started) * 1000)
        assert '"remaining"' in answer, "the window should offer slots"
    finally:
        await db.close()
    return timings


async def version_read_latency(owner: str, service: uuid.UUID, calls: int) -> list[float]:
    db = Database(app_role_conninfo(owner), min_size=1, max_size=1)
    await db.open()
    timings = []
    try:
        for i in range(calls + 20):
            started = time.perf_counter()
            await availability_version(db, service)
            if i >= 20:
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        await db.close()
    return timings


def pgbench_script(service: uuid.UUID, first: date) -> str:
    window = day_window(first, first + timedelta(days=WINDOW_DAYS - 1), ZONE)
    claims = json.dumps({"role": "anon"})

    def bind(statement: str) -> str:
        return (
            as_pgbench(statement)
            .replace(":id", f"'{service}'")
            .replace(":start", f"'{window.starts_at.isoformat()}'")
            .replace(":end", f"'{window.ends_at.isoformat()}'")
        )

    return (
        "begin;\n"
        f"select set_config('role', 'anon', true), set_config('request.jwt.claims', '{claims}', true),"
        " set_config('slotease.api_key_hash', '', true);\n"
        f"{bind(SCHEDULE_SQL)};\n{bind(CLOSURES_SQL)};\n{bind(BUSY_SQL)};\ncommit;\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    owner = fresh_database("slotease_bench_slots")
    service = seed(owner, args.rows)
    timings = asyncio.run(cache_miss_latency(owner, service, args.calls))
    version_timings = asyncio.run(version_read_latency(owner, service, args.calls * 5))
    first = datetime.now(ZONE).date() + timedelta(days=1)
    url_path = (
        f"/v1/available-slots?service_id={service}&from={first}"
        f"&to={first + timedelta(days=WINDOW_DAYS - 1)}"
    )
    with api_server(owner) as url:
        wrk("warm-up", url + url_path, connections=10, seconds=2)
        api = wrk(
            "API (HTTP, 1 process, cache in play)",
            url + url_path,
            connections=50,
            seconds=args.seconds,
        )
    peer = pgbench(
        "pgbench: the cache-miss SQL",
        app_role_conninfo(owner),
        pgbench_script(service, first),
        clients=50,
        seconds=args.seconds,
    )
    print(f"Machine: {machine()}")
    print(
        f"Server side, cache miss, {WINDOW_DAYS}-day window, {len(timings)} calls: "
        f"p50 {statistics.median(timings):.1f} ms, p95 {percentile(timings, 0.95):.1f} ms"
    )
    print(
        f"Availability version read, {len(version_timings)} calls: "
        f"p50 {statistics.median(version_timings):.2f} ms, "
        f"p95 {percentile(version_timings, 0.95):.2f} ms"
    )
    print("| side | requests/s | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    print(api.row())
    print(peer.row())
    print(f"\nAPI / pgbench throughput: {api.throughput / peer.throughput:.2f}")


if __name__ == "__main__":
    main()
