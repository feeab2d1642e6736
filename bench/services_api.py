"""`GET /v1/organizations/{id}/services` through the whole stack (HTTP, auth, RLS transaction,
JSON) against the compiled peer (shared/peers: Go's net/http and pgx running the route's very
statement as `anon` with the same claims) and pgbench, same client count, in one run.

    .venv/bin/python -m bench.services_api [--seconds 15] [--connections 50] [--workers N]
                                           [--server uvicorn|granian]
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any

import psycopg

from bench.common import (
    PIDS,
    Stats,
    app_role_conninfo,
    cpu_seconds,
    fresh_database,
    load_average,
    machine,
    pgbench,
    seed_organizations,
    sql_peer,
    wrk,
)
from bench.server import api_server
from slotease.services.repository import active_services_statement

PAGE = 50  # the route's default page size; it fetches one more row to know if a page follows
# Stands for the organization id in the statement given to the peer, which binds it as $1.
_PARAMETER = uuid.UUID(int=0)


def route_statement(owner: str, org_id: uuid.UUID) -> str:
    """The route's statement for an anonymous first page, as literal SQL."""
    query, params = active_services_statement(org_id, after=None, limit=PAGE + 1)
    with psycopg.connect(owner) as conn:
        return psycopg.ClientCursor(conn).mogrify(query, params)


def route_transaction(owner: str, org_id: uuid.UUID) -> str:
    """The transaction the API runs for an anonymous caller, as literal SQL for pgbench."""
    claims = json.dumps({"role": "anon"})
    return (
        "begin;\n"
        f"select set_config('role', 'anon', true), set_config('request.jwt.claims', '{claims}', true),"
        " set_config('slotease.api_key_hash', '', true);\n"
        f"{route_statement(owner, org_id)};\n"
        "commit;\n"
    )


def peer_statement(owner: str) -> str:
    """The route's statement with the organization as the peer's `$1`; the peer answers its
    `items`, the JSON array PostgreSQL built (the API adds only the cursor around it)."""
    statement = route_statement(owner, _PARAMETER)
    for spelling in (str(_PARAMETER), _PARAMETER.hex):
        statement = statement.replace(f"'{spelling}'", "$1")
    return f"select x.items::json from ({statement}) x"


def measured(label: str, base: str, url: str, args: Any) -> Stats:
    """wrk on `url` of the server at `base`, with the server's CPU time per request."""
    # Warm the pool and the plan caches before measuring.
    wrk("warm-up", url, connections=10, seconds=2)
    cpu = cpu_seconds(PIDS[base])
    # A loaded machine stalls some requests past wrk's 2 s: they count, slow, not as failures.
    stats = wrk(label, url, connections=args.connections, seconds=args.seconds, timeout_seconds=10)
    per_request = (cpu_seconds(PIDS[base]) - cpu) / (stats.throughput * args.seconds) * 1000
    print(f"{stats.row()} {per_request:.2f} | {load_average()} |", flush=True)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="API server processes of the second run (default: one per core)",
    )
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    args = parser.parse_args()

    owner = fresh_database("slotease_bench_readpath_services")
    org_ids = seed_organizations(owner, organizations=500, services_per_org=8)
    org = org_ids[0]
    route = f"/v1/organizations/{org}/services"
    print("| side | requests/s | p50 (ms) | p95 (ms) | server CPU ms/request | load average |")
    print("|---|---|---|---|---|---|")
    with api_server(owner, workers=1, server=args.server) as url:
        single = measured(f"API ({args.server}, 1 process)", url, url + route, args)
    # The processes share the peer's 20 connections, so as not to exhaust the shared server.
    pool_size = max(5, 20 // args.workers)
    with api_server(owner, workers=args.workers, pool_size=pool_size, server=args.server) as url:
        several = measured(f"API ({args.server}, {args.workers} processes)", url, url + route, args)
    with sql_peer(app_role_conninfo(owner), peer_statement(owner)) as url:
        peer = measured("compiled peer (Go, pgx), same SQL", url, f"{url}?p={org}", args)
    direct = pgbench(
        "pgbench, same SQL",
        app_role_conninfo(owner),
        route_transaction(owner, org),
        clients=args.connections,
        seconds=args.seconds,
        protocol="simple",
    )
    print(f"{direct.row()} | {load_average()} |")
    print(
        f"\nMachine: {machine()}; {args.connections} connections, {args.seconds} s each;"
        f" load average after: {load_average()}"
    )
    for stats in (single, several):
        print(
            f"{stats.label} / peer: {stats.throughput / peer.throughput:.2f} throughput,"
            f" p50 {stats.p50_ms / peer.p50_ms:.2f}x; / pgbench:"
            f" {stats.throughput / direct.throughput:.2f}"
        )


if __name__ == "__main__":
    main()
