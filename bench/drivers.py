"""Driver choice (architecture decision 3): asyncpg against psycopg 3, same pool size, same
concurrency, same transactions (identity set_config + query), alternated in one run.

    .venv/bin/python -m bench.drivers [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from bench.common import app_role_conninfo, fresh_database, machine, seed_organizations
from bench.rls_overhead import seed_appointments

IDENTITY = (
    "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true),"
    " set_config('slotease.api_key_hash', '', true)"
)
SERVICES = (
    "select s.id, s.name, s.duration_minutes, s.capacity, s.slot_interval_minutes"
    " from public.services s where s.organization_id = $1 and s.is_active order by s.name"
)
# The availability read path: a service's active places over 30 days.
BUSY = (
    "select a.starts_at, a.ends_at from public.appointments a where a.service_id = $1"
    " and a.status in ('booked', 'checked_in', 'in_service')"
    " and a.starts_at >= now() - interval '30 days' and a.starts_at < now()"
)
POOL_SIZE = 10
CONCURRENCY = 50


async def drive(seconds: float, work: Callable[[], Awaitable[None]]) -> float:
    """Transactions per second with CONCURRENCY tasks looping over `work`."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await work()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


def to_psycopg(sql: str) -> str:
    return sql.replace("$1", "%s").replace("$2", "%s")


async def psycopg_rate(
    conninfo: str, role: str, query: str, arg: uuid.UUID, seconds: float
) -> float:
    claims = json.dumps({"role": role})

    async with AsyncConnectionPool(
        conninfo,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True},
        connection_class=AsyncConnection,
    ) as pool:

        async def work() -> None:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(to_psycopg(IDENTITY), (role, claims))
                await (await conn.execute(to_psycopg(query), (arg,))).fetchall()

        return await drive(seconds, work)


async def asyncpg_rate(
    conninfo: str, role: str, query: str, arg: uuid.UUID, seconds: float
) -> float:
    claims = json.dumps({"role": role})

    params = conninfo_to_dict(conninfo)
    async with asyncpg.create_pool(
        host=str(params.get("host")),
        port=int(params.get("port", 5432)),
        user=str(params["user"]),
        database=str(params["dbname"]),
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
    ) as pool:

        async def work() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(IDENTITY, role, claims)
                await conn.fetch(query, arg)

        return await drive(seconds, work)


async def run(seconds: float, rounds: int) -> None:
    owner = fresh_database("slotease_bench_drivers")
    org_ids = seed_organizations(owner, organizations=200, services_per_org=8)
    seed_appointments(owner, org_ids[:20], per_org=3000)
    app = app_role_conninfo(owner)
    import psycopg

    with psycopg.connect(owner) as conn:
        row = conn.execute(
            "select service_id from public.appointments group by 1 order by count(*) desc limit 1"
        ).fetchone()
        assert row is not None
        busy_service = row[0]
    # The busy-places read runs inside a SECURITY DEFINER function in the API; service_role
    # stands for it here.
    cases = {
        "services of an organization (anon, RLS)": ("anon", SERVICES, org_ids[0]),
        "busy places over 30 days": ("service_role", BUSY, busy_service),
    }
    print(f"Machine: {machine()}; pool {POOL_SIZE}, {CONCURRENCY} concurrent tasks")
    print("| query | psycopg 3 (tx/s) | asyncpg (tx/s) | asyncpg / psycopg |")
    print("|---|---|---|---|")
    for name, (role, query, arg) in cases.items():
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(await psycopg_rate(app, role, query, arg, seconds))
            theirs.append(await asyncpg_rate(app, role, query, arg, seconds))
        best_ours, best_theirs = max(ours), max(theirs)
        print(f"| {name} | {best_ours:,.0f} | {best_theirs:,.0f} | {best_theirs / best_ours:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rounds))


if __name__ == "__main__":
    main()
