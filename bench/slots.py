"""Availability at scale: `GET /v1/available-slots` for a 30-day window on a service whose
appointments table holds 1,000,000 rows across 24 monthly partitions.

1. Server side, cache miss: the availability service called in-process on a real pooled
   connection acting as `anon`, p50/p95 over many calls: with a cache that never hits (every
   day of the window computed), then with the window cached but for the day a booking has
   just moved on (what the first client after a booking pays).
2. What every answer, a cache hit included, pays first: reading the service's and the days'
   availability versions from the database (one round trip), p50/p95 over many calls.
3. Through the API (HTTP, one process) with 50 connections (`--connections`) on the miss path (an app whose
   cache never hits), then as clients see it (the cache in play), against pgbench running
   what a miss asks of the database (the version read, then the transaction acting as `anon`
   with the one availability statement) with the same client count.

    .venv/bin/python -m bench.slots [--rows 1000000] [--seconds 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from fastapi import FastAPI

from bench.booking import as_pgbench
from bench.common import app_role_conninfo, fresh_database, machine, percentile, pgbench, wrk
from bench.server import api_server
from slotease.app import create_app
from slotease.appointments import service as availability
from slotease.appointments.repository import AVAILABILITY_SQL, availability_versions
from slotease.db.database import ANONYMOUS, Database
from slotease.kit.cache import Cache, MemoryCache

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
    """Every read misses: what the first client after a cold start pays, every day computed."""

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return [None] * len(keys)

    async def set_many(self, entries: dict[str, str], ttl_seconds: int) -> None:
        return None


def miss_app() -> FastAPI:
    """The API whose availability answers are never found in the cache: every request takes
    the miss path (`uvicorn --factory bench.slots:miss_app`)."""
    app = create_app()
    app.state.slot_cache = NeverCache()
    return app


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}"


async def cache_miss_latency(
    owner: str, service: uuid.UUID, calls: int, *, after_a_booking: bool
) -> list[float]:
    """The answer's time, read, miss and computation: with no day cached, or with every day
    cached but the one a booking just moved on (its version bumped as the booking's trigger
    does, outside the timing)."""
    db = Database(app_role_conninfo(owner), min_size=1, max_size=1)
    await db.open()
    cache: Cache = MemoryCache() if after_a_booking else NeverCache()
    first = datetime.now(ZONE).date() + timedelta(days=1)
    last = first + timedelta(days=WINDOW_DAYS - 1)
    timings = []
    answer = ""
    try:
        with psycopg.connect(owner, autocommit=True) as writer:
            for i in range(calls + 20):
                if after_a_booking:
                    writer.execute(
                        "insert into public.availability_days as v"
                        " (organization_id, service_id, day, version)"
                        " select organization_id, id, %s, nextval('app.availability_version_seq')"
                        " from public.services where id = %s"
                        " on conflict (service_id, day, organization_id)"
                        " do update set version = excluded.version",
                        (first + timedelta(days=i % WINDOW_DAYS), service),
                    )
                started = time.perf_counter()
                question = await availability.slots_request(db, service, first, last)
                cached = await availability.cached_slots_json(cache, question)
                assert cached is None, "every answer should miss"
                async with db.transaction(ANONYMOUS) as conn:
                    answer = await availability.compute_slots_json(conn, cache, question)
                if i >= 20:  # the first calls warm the plan caches
                    timings.append((time.perf_counter() - started) * 1000)
        assert '"remaining"' in answer, "the window should offer slots"
    finally:
        await db.close()
    return timings


async def version_read_latency(owner: str, service: uuid.UUID, calls: int) -> list[float]:
    db = Database(app_role_conninfo(owner), min_size=1, max_size=1)
    await db.open()
    first = datetime.now(ZONE).date() + timedelta(days=1)
    timings = []
    try:
        for i in range(calls + 20):
            started = time.perf_counter()
            await availability_versions(db, service, first, first + timedelta(days=WINDOW_DAYS - 1))
            if i >= 20:
                timings.append((time.perf_counter() - started) * 1000)
    finally:
        await db.close()
    return timings


def pgbench_script(service: uuid.UUID, first: date) -> str:
    window = availability.inputs_window(first, first + timedelta(days=WINDOW_DAYS - 1))
    claims = json.dumps({"role": "anon"})
    statement = (
        as_pgbench(AVAILABILITY_SQL)
        .replace(":id", f"'{service}'")
        .replace(":start", f"'{window.starts_at.isoformat()}'")
        .replace(":end", f"'{window.ends_at.isoformat()}'")
    )
    # As many round trips as the API's miss: the version read, BEGIN, the identity, the
    # availability statement, COMMIT (the API reads the version outside the transaction).
    return (
        "begin;\n"
        f"select set_config('role', 'anon', true), set_config('request.jwt.claims', '{claims}', true),"
        " set_config('slotease.api_key_hash', '', true);\n"
        f"select app.availability_version('{service}'),"
        f" app.availability_days('{service}', '{first}', '{first + timedelta(days=WINDOW_DAYS - 1)}');\n"
        f"{statement};\ncommit;\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    # Fewer on a loaded machine: wrk gives up on a request after 2 s.
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()

    owner = fresh_database("slotease_bench_slots")
    service = seed(owner, args.rows)
    print(f"Machine: {machine()}")
    for label, after_a_booking in (
        ("every day computed (cold cache)", False),
        ("after a booking, its day computed", True),
    ):
        timings = asyncio.run(
            cache_miss_latency(owner, service, args.calls, after_a_booking=after_a_booking)
        )
        print(
            f"Server side, cache miss, {WINDOW_DAYS}-day window, {label}, {len(timings)} calls: "
            f"p50 {statistics.median(timings):.1f} ms, p95 {percentile(timings, 0.95):.1f} ms"
            f" ({load()})"
        )
    version_timings = asyncio.run(version_read_latency(owner, service, args.calls * 5))
    print(
        f"Availability version read, {len(version_timings)} calls: "
        f"p50 {statistics.median(version_timings):.2f} ms, "
        f"p95 {percentile(version_timings, 0.95):.2f} ms ({load()})"
    )
    first = datetime.now(ZONE).date() + timedelta(days=1)
    url_path = (
        f"/v1/available-slots?service_id={service}&from={first}"
        f"&to={first + timedelta(days=WINDOW_DAYS - 1)}"
    )
    rows = []
    for label, app in (
        ("API (HTTP, 1 process), every request a cache miss", "bench.slots:miss_app"),
        ("API (HTTP, 1 process), cache in play", "slotease.app:create_app"),
    ):
        with api_server(owner, app=app) as url:
            wrk("warm-up", url + url_path, connections=10, seconds=2)
            rows.append(
                wrk(label, url + url_path, connections=args.connections, seconds=args.seconds)
            )
        print(f"{label}: {load()}")
    peer = pgbench(
        "pgbench: what a miss asks of the database",
        app_role_conninfo(owner),
        pgbench_script(service, first),
        clients=args.connections,
        seconds=args.seconds,
    )
    print(f"pgbench: {load()}")
    print("| side | requests/s | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    for row in [*rows, peer]:
        print(row.row())
    print(f"\nAPI miss path / pgbench throughput: {rows[0].throughput / peer.throughput:.2f}")


if __name__ == "__main__":
    main()
