"""`GET /v1/organizations/{id}/services` through the whole stack (HTTP, auth, RLS transaction,
JSON) against pgbench running the route's very SQL on the same database, same client count,
in one run.

    .venv/bin/python -m bench.services_api [--seconds 15] [--connections 50]
"""

from __future__ import annotations

import argparse
import json

import psycopg

from bench.common import (
    Stats,
    app_role_conninfo,
    fresh_database,
    machine,
    pgbench,
    seed_organizations,
    wrk,
)
from bench.server import api_server
from slotease.services.repository import active_services_statement

PAGE = 50  # the route's default page size; it fetches one more row to know if a page follows


def route_transaction(owner: str, org_id: object) -> str:
    """The transaction the API runs for an anonymous caller, as literal SQL for pgbench."""
    query, params = active_services_statement(org_id, after=None, limit=PAGE + 1)  # type: ignore[arg-type]
    with psycopg.connect(owner) as conn:
        statement = psycopg.ClientCursor(conn).mogrify(query, params)
    claims = json.dumps({"role": "anon"})
    return (
        "begin;\n"
        f"select set_config('role', 'anon', true), set_config('request.jwt.claims', '{claims}', true),"
        " set_config('slotease.api_key_hash', '', true);\n"
        f"{statement};\n"
        "commit;\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    args = parser.parse_args()

    owner = fresh_database("slotease_bench_services")
    org_ids = seed_organizations(owner, organizations=500, services_per_org=8)
    org = org_ids[0]
    results: list[Stats] = []
    with api_server(owner, workers=args.workers) as url:
        # Warm the pool and the plan caches before measuring.
        wrk("warm-up", f"{url}/v1/organizations/{org}/services", connections=10, seconds=2)
        results.append(
            wrk(
                f"API (HTTP, {args.workers} process(es))",
                f"{url}/v1/organizations/{org}/services",
                connections=args.connections,
                seconds=args.seconds,
            )
        )
    results.append(
        pgbench(
            "pgbench, same SQL",
            app_role_conninfo(owner),
            route_transaction(owner, org),
            clients=args.connections,
            seconds=args.seconds,
            protocol="simple",
        )
    )
    api, peer = results
    print(
        f"Machine: {machine()}; {args.connections} connections, {args.seconds} s each,"
        f" {args.workers} API process(es)"
    )
    print("| side | requests/s | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    for stats in results:
        print(stats.row())
    print(
        f"\nAPI / pgbench throughput: {api.throughput / peer.throughput:.2f}; "
        f"p95 ratio: {api.p95_ms / peer.p95_ms:.2f}"
    )


if __name__ == "__main__":
    main()
