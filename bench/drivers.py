"""Driver choice (architecture decision 3): asyncpg against psycopg 3 on our hot transactions
(the services list, the availability read, a booking), same pool size, same concurrency, same
statements, alternated in one run.

    .venv/bin/python -m bench.drivers [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import asyncpg
import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from bench.common import app_role_conninfo, fresh_database, machine, seed_organizations
from slotease.appointments.repository import BUSY_SQL, INSERT_SQL, SCHEDULE_SQL

IDENTITY = (
    "select set_config('role', %(role)s, true), set_config('request.jwt.claims', %(claims)s, true),"
    " set_config('slotease.api_key_hash', '', true)"
)
SERVICES = (
    "select s.id, s.name, s.duration_minutes, s.capacity, s.slot_interval_minutes"
    " from public.services s where s.organization_id = %(org)s and s.is_active order by s.name"
)
POOL_SIZE = 10
CONCURRENCY = 50

Params = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    name: str
    role: str
    claims: str
    statements: list[tuple[str, Params]]


def numbered(statement: str) -> tuple[str, list[str]]:
    """psycopg's %(name)s placeholders as asyncpg's $n, with the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, statement), names


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


async def psycopg_rate(conninfo: str, case: Case, seconds: float) -> float:
    identity = {"role": case.role, "claims": case.claims}
    async with AsyncConnectionPool(
        conninfo, min_size=POOL_SIZE, max_size=POOL_SIZE, kwargs={"autocommit": True},
        connection_class=AsyncConnection,
    ) as pool:  # fmt: skip

        async def work() -> None:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(IDENTITY, identity)
                for statement, params in case.statements:
                    cursor = await conn.execute(statement, params())
                    # The booking's INSERT returns nothing (its row is known before it is written).
                    if cursor.description is not None:
                        await cursor.fetchall()

        return await drive(seconds, work)


async def asyncpg_rate(conninfo: str, case: Case, seconds: float) -> float:
    params = conninfo_to_dict(conninfo)
    identity_sql, _ = numbered(IDENTITY)
    prepared = [(*numbered(statement), make) for statement, make in case.statements]
    async with asyncpg.create_pool(
        host=str(params.get("host")), port=int(params.get("port", 5432)),
        user=str(params["user"]), database=str(params["dbname"]),
        min_size=POOL_SIZE, max_size=POOL_SIZE,
    ) as pool:  # fmt: skip

        async def work() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(identity_sql, case.role, case.claims)
                for statement, names, make in prepared:
                    values = make()
                    await conn.fetch(statement, *(values[name] for name in names))

        return await drive(seconds, work)


def cases(owner: str) -> list[Case]:
    org_ids = seed_organizations(owner, organizations=200, services_per_org=8)
    with psycopg.connect(owner, autocommit=True) as conn:
        service = conn.execute(
            "select id from public.services where organization_id = %s order by name limit 1",
            (org_ids[0],),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("update public.services set capacity = 10000 where id = %s", (service,))
        user = conn.execute(
            "insert into auth.users (email) values ('driver@bench.test') returning id"
        ).fetchone()[0]  # type: ignore[index]
    anon = json.dumps({"role": "anon"})
    now = datetime.now(UTC)
    window = {"id": service, "start": now, "end": now + timedelta(days=30)}
    slots = count()

    def booking() -> dict[str, Any]:
        # A new place each time, on the grid of the seeded service (08:30, 09:00, ...).
        day = now.date() + timedelta(days=1 + next(slots) % 40)
        starts_at = datetime(day.year, day.month, day.day, 8, 30, tzinfo=UTC)
        return {
            "id": uuid.uuid4(), "organization_id": org_ids[0], "service_id": service,
            "customer_id": user,
            "starts_at": starts_at, "ends_at": starts_at + timedelta(minutes=30), "notes": None,
        }  # fmt: skip

    return [
        Case("services list (anon, RLS)", "anon", anon, [(SERVICES, lambda: {"org": org_ids[0]})]),
        Case(
            "availability read (anon)",
            "anon",
            anon,
            [(SCHEDULE_SQL, lambda: {"id": service}), (BUSY_SQL, lambda: window)],
        ),
        Case(
            "booking insert (customer, capacity trigger)",
            "authenticated",
            json.dumps({"role": "authenticated", "sub": str(user)}),
            [(INSERT_SQL, booking)],
        ),
    ]


async def run(seconds: float, rounds: int) -> None:
    owner = fresh_database("slotease_bench_drivers")
    app = app_role_conninfo(owner)
    print(f"Machine: {machine()}; pool {POOL_SIZE}, {CONCURRENCY} concurrent tasks")
    print("| transaction | psycopg 3 (tx/s) | asyncpg (tx/s) | asyncpg / psycopg |")
    print("|---|---|---|---|")
    for case in cases(owner):
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(await psycopg_rate(app, case, seconds))
            theirs.append(await asyncpg_rate(app, case, seconds))
        best_ours, best_theirs = max(ours), max(theirs)
        print(
            f"| {case.name} | {best_ours:,.0f} | {best_theirs:,.0f} | {best_theirs / best_ours:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rounds))


if __name__ == "__main__":
    main()
