"""Call-next independent of the line (issue 14): 4 counters calling
`POST /v1/queues/{id}/call-next` concurrently through the API, against pgbench running the
claim statement (SKIP LOCKED) with 4 clients on a queue of its own, in one run per line
length; WebSocket clients follow tickets of the line meanwhile, and must see their positions
within a second; then an SQL check that no ticket was called twice.

    .venv/bin/python -m bench.call_next [--seconds 10] [--line 1000 10000] [--peer-tickets 100000]

Both sides run `slotease.queues.repository.CLAIM_SQL`. The route does more than the claim
(the staff check, the grace-period sweep, the queue's summary, one `queue.moved` and one
`queue.updated` event), but nothing per waiting ticket: what it costs should not depend on
`--line`. The API's line is topped up from the side while the counters call (bulk inserts
through the owner, not measured), so `--line` tickets wait throughout; pgbench's queue is
simply long enough not to run dry (`--peer-tickets`), since the claim reads one index row
whatever the line's length.

Followers: `FOLLOWERS` WebSocket clients each follow a ticket standing at the back of the line
(joined "tomorrow", so the top-up stands ahead of them and every call moves them). During the
load their last position must match the database's a second after the load stops; then
`PROBE_CALLS` calls one at a time measure, for each follower, the time from the request's start
to the frame with its new position.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
from websockets.asyncio.client import connect

from bench.booking import as_pgbench
from bench.common import (
    app_role_conninfo,
    fresh_database,
    machine,
    percentile,
    pgbench,
    wrk,
)
from bench.server import BENCH_JWT_SECRET, api_server
from slotease.auth.tokens import mint_access_token
from slotease.queues.repository import CLAIM_SQL

COUNTERS = 4
FOLLOWERS = 5
PROBE_CALLS = 20
# How often the top-up runs while the counters call.
REFILL_SECONDS = 0.1
FRESH_WITHIN_SECONDS = 1.0


def seed(
    owner: str, line: int, peer_tickets: int
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """A staff member and two lines (API side, pgbench side) of walk-ins who joined a second
    apart, the API's ending with the followed tickets; returns the staff user, the two
    queues and the followed tickets."""
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
        for queue, tickets in zip(queues, (line - FOLLOWERS, peer_tickets), strict=True):
            conn.execute(
                "insert into public.tickets (organization_id, queue_id, service_date, number,"
                " status, line_position_at, waiting_since)"
                " select %(org)s, %(queue)s, current_date, g, 'waiting',"
                "  now() - make_interval(secs => %(n)s - g), now()"
                " from generate_series(1, %(n)s) g",
                {"org": org, "queue": queue, "n": tickets},
            )
        followers = [
            row[0]
            for row in conn.execute(
                "insert into public.tickets (organization_id, queue_id, service_date, number,"
                " status, line_position_at, waiting_since)"
                " select %(org)s, %(queue)s, current_date, 1000000 + g, 'waiting',"
                "  now() + interval '1 day' + make_interval(secs => g), now()"
                " from generate_series(1, %(n)s) g returning id",
                {"org": org, "queue": queues[0], "n": FOLLOWERS},
            ).fetchall()
        ]
        conn.execute("set session_replication_role = origin")
        conn.execute("vacuum analyze public.tickets")
    return staff, queues[0], queues[1], followers


@contextmanager
def topped_up(owner: str, queue: uuid.UUID, line: int, seconds: float) -> Iterator[None]:
    """Keep `line` tickets waiting in `queue` for `seconds` of the block: every
    REFILL_SECONDS, as many walk-ins as were called join (ahead of the followers, who joined
    "tomorrow"), and the tickets called over a second ago are served, as counters would.
    These writes announce nothing, so they stop a while before the calls do: the followers'
    last positions then come from calls alone."""
    stop = threading.Event()
    until = time.monotonic() + seconds

    def refill() -> None:
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute("set session_replication_role = replica")
            while not stop.wait(REFILL_SECONDS) and time.monotonic() < until:
                # The counters serve whom they called: the queue's board shows the last few.
                conn.execute(
                    "update public.tickets set status = 'served', serving_at = called_at,"
                    " finished_at = now() where queue_id = %(queue)s and status = 'called'"
                    " and called_at < now() - interval '1 second'",
                    {"queue": queue},
                )
                conn.execute(
                    "insert into public.tickets (organization_id, queue_id, service_date,"
                    " number, status)"
                    " select q.organization_id, q.id, current_date, n.last + g, 'waiting'"
                    " from public.queues q,"
                    "  (select max(number) filter (where number < 1000000) as last,"
                    "   count(*) filter (where status = 'waiting') as waiting"
                    "   from public.tickets where queue_id = %(queue)s) n,"
                    "  generate_series(1, greatest(%(line)s - n.waiting, 0)) g"
                    " where q.id = %(queue)s",
                    {"queue": queue, "line": line},
                )

    thread = threading.Thread(target=refill, name="refill")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Followers:
    """WebSocket clients following `tickets`, in a thread of their own; `seen` holds each
    ticket's position frames as (arrival, position)."""

    def __init__(self, url: str, token: str, tickets: list[uuid.UUID]) -> None:
        self.url = url.replace("http://", "ws://") + f"/v1/realtime?token={token}"
        self.tickets = [str(ticket) for ticket in tickets]
        self.seen: dict[str, list[tuple[float, int]]] = {ticket: [] for ticket in self.tickets}
        self._ready = threading.Event()
        self._subscribed = 0
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))

    def __enter__(self) -> Followers:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the followers did not subscribe")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._loop.close()

    def last(self, ticket: str) -> int | None:
        frames = self.seen[ticket]
        return frames[-1][1] if frames else None

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        await asyncio.gather(*(self._follow(ticket) for ticket in self.tickets))

    async def _follow(self, ticket: str) -> None:
        assert self._stop is not None
        async with connect(self.url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": f"ticket:{ticket}"}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            self._subscribed += 1
            if self._subscribed == len(self.tickets):
                self._ready.set()
            stopping = asyncio.ensure_future(self._stop.wait())
            while True:
                receiving = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait(
                    {receiving, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    receiving.cancel()
                    return
                frame = json.loads(receiving.result())
                if frame.get("event") == "ticket.position":
                    self.seen[ticket].append((time.perf_counter(), frame["payload"]["position"]))


def positions(owner: str, tickets: list[uuid.UUID]) -> dict[str, int]:
    with psycopg.connect(owner) as conn:
        rows = conn.execute(
            'select id, "position" from app.ticket_positions(%s::uuid[])', (tickets,)
        ).fetchall()
    return {str(row[0]): int(row[1]) for row in rows}


def probe(
    url: str, token: str, queue: uuid.UUID, owner: str, followers: Followers
) -> tuple[list[float], int]:
    """Calls one at a time: per follower and call, seconds from the request's start to the
    frame with its new position; and how many such frames never came within a second."""
    expected = positions(owner, [uuid.UUID(ticket) for ticket in followers.tickets])
    delays: list[float] = []
    missed = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(PROBE_CALLS):
            started = time.perf_counter()
            response = http.post(f"/v1/queues/{queue}/call-next", json={"counter": "Probe"})
            response.raise_for_status()
            for ticket in followers.tickets:
                expected[ticket] -= 1
                arrival = _arrival(followers, ticket, expected[ticket], started)
                if arrival is None:
                    missed += 1
                else:
                    delays.append(arrival - started)
    return delays, missed


def _arrival(followers: Followers, ticket: str, position: int, since: float) -> float | None:
    deadline = since + FRESH_WITHIN_SECONDS
    while time.perf_counter() < deadline:
        for arrival, seen in followers.seen[ticket]:
            if arrival >= since and seen == position:
                return arrival
        time.sleep(0.002)
    return None


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


def run(line: int, seconds: int, peer_tickets: int) -> bool:
    """One line length, both sides; prints the figures, returns whether the goals hold."""
    owner = fresh_database("slotease_bench_queue_call_next")
    staff, api_queue, peer_queue, followed = seed(owner, line, peer_tickets)
    token = mint_access_token(
        BENCH_JWT_SECRET, user_id=staff, email="counter@bench.test", ttl_seconds=7200
    )
    with api_server(owner) as url, Followers(url, token, followed) as followers:
        with topped_up(owner, api_queue, line, seconds - 2):
            api = wrk(
                f"API: call-next, {COUNTERS} counters, {line:,} waiting",
                f"{url}/v1/queues/{api_queue}/call-next",
                connections=COUNTERS,
                seconds=seconds,
                requests_lua=wrk_lua(token),
            )
        time.sleep(FRESH_WITHIN_SECONDS)
        truth = positions(owner, followed)
        stale = [ticket for ticket in followers.tickets if followers.last(ticket) != truth[ticket]]
        frames = sum(len(seen) for seen in followers.seen.values())
        delays, missed = probe(url, token, api_queue, owner, followers)
    peer = pgbench(
        f"pgbench: claim SQL, {COUNTERS} clients",
        app_role_conninfo(owner),
        pgbench_script(staff, peer_queue),
        clients=COUNTERS,
        seconds=seconds,
    )
    counts, twice = check(owner, [api_queue, peer_queue])
    ratio = api.throughput / peer.throughput
    print(f"\n### {line:,} waiting")
    print("| side | calls/s | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    for stats in (api, peer):
        print(stats.row())
    print(f"API / pgbench: {ratio:.3f} (goal >= 0.5); API p95 {api.p95_ms:.1f} ms (goal <= 25)")
    print(
        f"followers: {FOLLOWERS}, {frames:,} position frames during the load; stale "
        f"{FRESH_WITHIN_SECONDS:.0f} s after it: {len(stale)}; one call at a time: position "
        f"after p50 {percentile(delays, 0.5) * 1000:.0f} ms, p95 "
        f"{percentile(delays, 0.95) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms, "
        f"not within {FRESH_WITHIN_SECONDS:.0f} s: {missed}"
    )
    for side, queue in (("API", api_queue), ("pgbench", peer_queue)):
        called, waiting = counts[queue]
        print(f"{side} queue: {called:,} called, {waiting:,} still waiting")
    print(f"tickets called more than once: {twice}")
    if twice or any(waiting == 0 for _, waiting in counts.values()):
        raise SystemExit("a ticket was called twice, or a line ran dry during the run")
    return ratio >= 0.5 and api.p95_ms <= 25 and not stale and not missed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--line", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--peer-tickets", type=int, default=100_000)
    args = parser.parse_args()
    print(
        f"Machine: {machine()}; {args.seconds} s each; pgbench's queue: "
        f"{args.peer_tickets:,} waiting"
    )
    met = [run(line, args.seconds, args.peer_tickets) for line in args.line]
    print("\ngoals met: " + ", ".join(f"{n:,}: {ok}" for n, ok in zip(args.line, met, strict=True)))


if __name__ == "__main__":
    main()
