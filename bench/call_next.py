"""Call-next throughput: 4 counters calling `POST /v1/queues/{id}/call-next` concurrently
through the API, against pgbench running the claim statement (SKIP LOCKED) with 4 clients
on a queue of its own, in one run; then an SQL check that no ticket was called twice.

    .venv/bin/python -m bench.call_next [--seconds 10] [--line 1000] [--peer-tickets 100000]

Both sides run `slotease.queues.repository.CLAIM_SQL`. The route does more than the claim:
the staff check, the grace-period sweep, and the whole line read before and after the call
with a `ticket.position` event for every waiting ticket that moved up, so its cost grows with
the line (`--line`). The claim itself reads one row off the line's index whatever its length,
so pgbench's queue is simply long enough not to run dry (`--peer-tickets`).
"""

from __future__ import annotations

import argparse
import json
import uuid

import psycopg

from bench.booking import as_pgbench
from bench.common import Stats, app_role_conninfo, fresh_database, machine, pgbench, wrk
from bench.server import BENCH_JWT_SECRET, api_server
from slotease.auth.tokens import mint_access_token
from slotease.queues.repository import CLAIM_SQL

COUNTERS = 4


def seed(owner: str, line: int, peer_tickets: int) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A staff member and two lines (API side, pgbench side) of walk-ins who joined a second
    apart; returns the staff user and the two queues."""
    with psycopg.connect(owner, autocommit=True) as conn:
        org = conn.execute(
            "insert into public.organizations (name, slug, kind, timezone)"
            " values ('Bench town hall', 'bench-town-hall', 'government', 'Europe/Paris')"
            " returning id"
        ).fetchone()[0]  # type: ignore[index]
        staff = conn.execute(
            "insert into auth.users (email) values ('counter@bench.test') returning id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into public.organization_members (organization_id, user_id, role)"
            " values (%s, %s, 'staff')",
            (org, staff),
        )
        queues = [
            conn.execute(
                "insert into public.queues (organization_id, name, prefix)"
                " values (%s, %s, %s) returning id",
                (org, name, prefix),
            ).fetchone()[0]  # type: ignore[index]
            for name, prefix in (("Desk (API)", "A"), ("Desk (pgbench)", "B"))
        ]
        # Seeding is not what is measured: bulk rows skip the audit trigger.
        conn.execute("set session_replication_role = replica")
        for queue, tickets in zip(queues, (line, peer_tickets), strict=True):
            conn.execute(
                "insert into public.tickets (organization_id, queue_id, service_date, number,"
                " status, line_position_at, waiting_since)"
                " select %(org)s, %(queue)s, current_date, g, 'waiting',"
                "  now() - make_interval(secs => %(n)s - g), now()"
                " from generate_series(1, %(n)s) g",
                {"org": org, "queue": queue, "n": tickets},
            )
        conn.execute("set session_replication_role = origin")
        conn.execute("vacuum analyze public.tickets")
    return staff, queues[0], queues[1]


def pgbench_script(staff: uuid.UUID, queue: uuid.UUID) -> str:
    claims = json.dumps({"sub": str(staff), "role": "authenticated"})
    claim = (
        as_pgbench(CLAIM_SQL)
        .replace(":queue", f"'{queue}'")
        .replace(":counter", "('Counter ' || :client_id)")
    )
    return (
        "begin;\n"
        f"select set_config('role', 'authenticated', true),"
        f" set_config('request.jwt.claims', '{claims}', true),"
        " set_config('slotease.api_key_hash', '', true);\n"
        f"{claim};\ncommit;\n"
    )


def wrk_lua(token: str) -> str:
    """Each request names one of the counters, so the four connections call as four desks."""
    return (
        "request = function()\n"
        f"  local body = '{{\"counter\":\"Counter ' .. math.random({COUNTERS}) .. '\"}}'\n"
        "  local headers = {['Content-Type'] = 'application/json',"
        f" ['Authorization'] = 'Bearer {token}'}}\n"
        "  return wrk.format('POST', nil, headers, body)\n"
        "end\n"
    )


def check(owner: str, queues: list[uuid.UUID]) -> tuple[dict[uuid.UUID, tuple[int, int]], int]:
    """Per queue: tickets called and still waiting; and how many tickets moved from waiting
    to called more than once, from the audit log (every UPDATE leaves its old and new row)."""
    with psycopg.connect(owner) as conn:
        counts = {
            queue: conn.execute(
                "select count(*) filter (where status = 'called'),"
                " count(*) filter (where status = 'waiting')"
                " from public.tickets where queue_id = %s",
                (queue,),
            ).fetchone()
            for queue in queues
        }
        twice = conn.execute(
            "select count(*) from (select row_id from public.audit_log"
            " where table_name = 'tickets' and operation = 'UPDATE'"
            " and old_row ->> 'status' = 'waiting' and new_row ->> 'status' = 'called'"
            " group by row_id having count(*) > 1) repeated"
        ).fetchone()
    return {q: (int(c[0]), int(c[1])) for q, c in counts.items() if c}, int(
        twice[0]
    ) if twice else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--line", type=int, default=1_000)
    parser.add_argument("--peer-tickets", type=int, default=100_000)
    args = parser.parse_args()

    owner = fresh_database("slotease_bench_call_next")
    staff, api_queue, peer_queue = seed(owner, args.line, args.peer_tickets)
    token = mint_access_token(
        BENCH_JWT_SECRET, user_id=staff, email="counter@bench.test", ttl_seconds=7200
    )
    results: list[Stats] = []
    with api_server(owner) as url:
        results.append(
            wrk(
                f"API: call-next, {COUNTERS} counters",
                f"{url}/v1/queues/{api_queue}/call-next",
                connections=COUNTERS,
                seconds=args.seconds,
                requests_lua=wrk_lua(token),
            )
        )
    results.append(
        pgbench(
            f"pgbench: claim SQL, {COUNTERS} clients",
            app_role_conninfo(owner),
            pgbench_script(staff, peer_queue),
            clients=COUNTERS,
            seconds=args.seconds,
        )
    )
    counts, twice = check(owner, [api_queue, peer_queue])
    api, peer = results
    print(
        f"Machine: {machine()}; {args.seconds} s each; waiting at the start: {args.line:,} "
        f"in the API's queue, {args.peer_tickets:,} in pgbench's"
    )
    print("| side | calls/s | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    for stats in results:
        print(stats.row())
    print(f"\nAPI / pgbench: {api.throughput / peer.throughput:.3f}")
    for side, queue in (("API", api_queue), ("pgbench", peer_queue)):
        called, waiting = counts[queue]
        print(f"{side} queue: {called:,} called, {waiting:,} still waiting")
    print(f"tickets called more than once: {twice}")
    if twice or any(waiting == 0 for _, waiting in counts.values()):
        raise SystemExit("a ticket was called twice, or a line ran dry during the run")


if __name__ == "__main__":
    main()
