"""RLS overhead: the same queries with and without row-level security, p50 ratio.

Both sides connect as the API's login role and run the same transaction shape (the identity
`set_config` then the query); the only difference is the role: `service_role` bypasses RLS,
`anon`/`authenticated` go through the policies. Goal: p50 ratio ≤ 1.2.

    .venv/bin/python -m bench.rls_overhead [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import uuid

import psycopg

from bench.common import (
    app_role_conninfo,
    fresh_database,
    machine,
    pgbench,
    seed_organizations,
    worker_role_conninfo,
)

IDENTITY = (
    "select set_config('role', '{role}', true), set_config('request.jwt.claims', '{claims}', true),"
    " set_config('slotease.api_key_hash', '', true);\n"
)

SERVICES = (
    "select s.id, s.name, s.duration_minutes, s.capacity from public.services s"
    " where s.organization_id = '{org}' and s.is_active order by s.name;\n"
)

APPOINTMENTS = (
    "select a.id, a.starts_at, a.status, a.customer_id from public.appointments a"
    " where a.organization_id = '{org}' and a.starts_at >= now() - interval '7 days'"
    " and a.starts_at < now() order by a.starts_at limit 50;\n"
)


def seed_appointments(owner: str, org_ids: list[uuid.UUID], per_org: int) -> uuid.UUID:
    """Appointments spread over the last 60 days, and a staff member of the first org."""
    with psycopg.connect(owner, autocommit=True) as conn:
        staff = conn.execute(
            "insert into auth.users (email) values ('staff@bench.test') returning id"
        ).fetchone()
        assert staff is not None
        conn.execute(
            "insert into public.organization_members values (%s, %s, 'staff')",
            (org_ids[0], staff[0]),
        )
        customer = conn.execute(
            "insert into auth.users (email) values ('customer@bench.test') returning id"
        ).fetchone()
        assert customer is not None
        # Seeding is not what we measure: skip audit and capacity triggers for speed.
        conn.execute("set session_replication_role = replica")
        conn.execute(
            """
            insert into public.appointments (organization_id, service_id, customer_id, starts_at,
                                             ends_at, status)
            select s.organization_id, s.id, %s, t, t + interval '30 minutes', 'completed'
            from (select distinct on (organization_id) * from public.services
                  where organization_id = any(%s) order by organization_id, id) s,
                 lateral (select date_trunc('hour', now()) - g * interval '30 minutes' as t
                          from generate_series(1, %s) g) times
            """,
            (customer[0], org_ids, per_org),
        )
        conn.execute("analyze")
    return staff[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    owner = fresh_database("slotease_bench_rls")
    org_ids = seed_organizations(owner, organizations=500, services_per_org=8)
    staff = seed_appointments(owner, org_ids[:50], per_org=2000)
    app = app_role_conninfo(owner)
    # Only the worker's login role may become service_role.
    worker = worker_role_conninfo(owner)
    org = org_ids[0]

    cases = {
        "services (anon)": (
            SERVICES.format(org=org),
            IDENTITY.format(role="anon", claims=json.dumps({"role": "anon"})),
        ),
        "appointments (staff)": (
            APPOINTMENTS.format(org=org),
            IDENTITY.format(
                role="authenticated",
                claims=json.dumps({"role": "authenticated", "sub": str(staff)}),
            ),
        ),
    }
    bypass = IDENTITY.format(role="service_role", claims=json.dumps({"role": "service_role"}))
    print(f"Machine: {machine()}")
    print("| query | p50 without RLS (ms) | p50 with RLS (ms) | ratio |")
    print("|---|---|---|---|")
    for name, (query, identity) in cases.items():
        without, with_rls = [], []
        # Interleave the two sides so drift on a noisy machine hits both alike.
        for _ in range(args.rounds):
            without.append(
                pgbench(
                    name,
                    worker,
                    f"begin;\n{bypass}{query}commit;\n",
                    clients=1,
                    seconds=args.seconds,
                ).p50_ms
            )
            with_rls.append(
                pgbench(
                    name,
                    app,
                    f"begin;\n{identity}{query}commit;\n",
                    clients=1,
                    seconds=args.seconds,
                ).p50_ms
            )
        base, rls = min(without), min(with_rls)
        print(f"| {name} | {base:.3f} | {rls:.3f} | {rls / base:.2f} |")


if __name__ == "__main__":
    main()
