"""Booking throughput: `POST /v1/appointments` through the API against pgbench running the
same booking transaction directly (identity, schedule, closures, then in one pipeline the
insert under the capacity trigger, the statement of its confirmation and reminder jobs and the
webhook statement), same client count, in one run; then an SQL check that no slot is
overbooked.

    .venv/bin/python -m bench.booking [--seconds 15] [--connections 50] [--timeout 2]

Both sides book random slots of one service for random users. The service's capacity is set
high enough that no slot fills during a run, so both sides run exactly the same statements
with no refusals (pgbench aborts a client on an error it cannot retry); refusals under
contention are covered by the concurrency tests.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from bench.common import Stats, app_role_conninfo, fresh_database, machine, pgbench, wrk
from bench.server import BENCH_JWT_SECRET, api_server
from slotease.appointments.repository import CLOSURES_SQL, INSERT_SQL, SCHEDULE_SQL
from slotease.appointments.slots import Schedule, WorkingHours, candidate_starts
from slotease.auth.tokens import mint_access_token
from slotease.config import Settings
from slotease.jobs.repository import ENQUEUE_JOBS_SQL, Job
from slotease.kit.days import day_window
from slotease.kit.offsets import parse_offsets
from slotease.notifications.automatic import NOTIFY_TASK, REMIND_TASK
from slotease.notifications.delivery import NOTIFICATIONS_QUEUE
from slotease.webhooks.delivery import DELIVER_TASK, JOB_LOCK_PREFIX, WEBHOOKS_QUEUE
from slotease.webhooks.repository import RECORD_DELIVERIES_SQL

USERS = 200
CAPACITY = 1000
ZONE = "Europe/Paris"
# Stands for the appointment's id in the jobs pgbench enqueues: the id is drawn per booking.
ID = "00000000-0000-4000-8000-000000000000"


def seed(owner: str) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    with psycopg.connect(owner, autocommit=True) as conn:
        org = conn.execute(
            "insert into public.organizations (name, slug, kind, timezone)"
            " values ('Bench hospital', 'bench-hospital', 'hospital', %s) returning id",
            (ZONE,),
        ).fetchone()[0]  # type: ignore[index]
        service = conn.execute(
            "insert into public.services (organization_id, name, duration_minutes, capacity,"
            " slot_interval_minutes, max_advance_days) values (%s, 'Blood test', 30, %s, 30, 60)"
            " returning id",
            (org, CAPACITY),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into public.service_working_hours (organization_id, service_id, weekday,"
            " start_time, end_time) select %s, %s, d, '08:00', '20:00' from generate_series(0, 6) d",
            (org, service),
        )
        users = [
            row[0]
            for row in conn.execute(
                "insert into auth.users (email) select 'patient' || g || '@bench.test'"
                " from generate_series(1, %s) g returning id",
                (USERS,),
            ).fetchall()
        ]
    return org, service, users


def slots() -> list[tuple[datetime, datetime, datetime, datetime]]:
    """The service's slots from tomorrow on, with the local day's window the API reads."""
    zone = ZoneInfo(ZONE)
    schedule = Schedule(
        timezone=zone,
        working_hours=[WorkingHours(d, datetime.strptime("08:00", "%H:%M").time(),
                                    datetime.strptime("20:00", "%H:%M").time()) for d in range(7)],
        slot_interval_minutes=30, duration_minutes=30, buffer_minutes=0, capacity=CAPACITY,
        min_notice_minutes=0, max_advance_days=60,
    )  # fmt: skip
    today = datetime.now(zone).date()
    found = []
    for candidate in candidate_starts(
        schedule, today + timedelta(days=1), today + timedelta(days=58), datetime.now(UTC)
    ):
        local_day = candidate.starts_at.astimezone(zone).date()
        window = day_window(local_day, local_day, zone)
        found.append((candidate.starts_at, candidate.ends_at, window.starts_at, window.ends_at))
    return found


def as_pgbench(statement: str) -> str:
    """psycopg's %(name)s placeholders as pgbench variables."""
    return re.sub(r"%\((\w+)\)s", r":\1", statement)


def booking_jobs(starts_at: datetime) -> str:
    """The jobs the API enqueues for a booking at `starts_at` (its confirmation and the
    reminders still ahead, at the default offsets), as `app.enqueue_jobs` reads them, the
    appointment's id being `ID`."""
    payload_start = starts_at.astimezone(ZoneInfo(ZONE)).isoformat()
    jobs = [Job(NOTIFY_TASK, {"event": "appointment.created", "subject_id": ID},
                queue=NOTIFICATIONS_QUEUE)]  # fmt: skip
    for label, offset in parse_offsets(Settings.model_fields["reminder_offsets"].default).items():
        if starts_at - offset > datetime.now(UTC):
            jobs.append(
                Job(
                    REMIND_TASK,
                    {"appointment_id": ID, "starts_at": payload_start, "offset": label},
                    queue=NOTIFICATIONS_QUEUE,
                    scheduled_at=starts_at - offset,
                    queueing_lock=f"reminder:{ID}:{label}",
                )
            )
    return json.dumps([job.spec() for job in jobs])


def pgbench_script(org: uuid.UUID, service: uuid.UUID) -> str:
    # The API sends no notes in this benchmark: NULL, as psycopg binds None. The id the API
    # chooses before the insert is drawn with the choice. No webhook listens, so the webhook
    # statement stops at its gate, as the API's does; its payload is not read.
    insert = as_pgbench(INSERT_SQL).replace(":notes", "NULL")
    jobs = as_pgbench(ENQUEUE_JOBS_SQL).replace(":jobs", f"replace(:jobs, '{ID}', :id)::jsonb")
    attempt = json.dumps(Job(DELIVER_TASK, queue=WEBHOOKS_QUEUE).spec())
    webhooks = (
        as_pgbench(RECORD_DELIVERIES_SQL)
        .replace(":org", f"'{org}'::uuid")
        .replace(":event", "'appointment.created'")
        .replace(":payload", "'{}'::jsonb")
        .replace(":attempt", f"'{attempt}'")
        .replace(":lock_prefix", f"'{JOB_LOCK_PREFIX}'")
    )
    return "\n".join(
        [
            f"\\set u random(1, {USERS})",
            "\\set s random(1, :nslots)",
            "select claims, starts_at, ends_at, day_start as start, day_end as end,"
            " customer_id, jobs, gen_random_uuid() as id"
            " from bench.choices where u = :u and s = :s \\gset",
            "begin;",
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', :claims, true),"
            " set_config('slotease.api_key_hash', '', true);",
            as_pgbench(SCHEDULE_SQL).replace(":id", f"'{service}'") + ";",
            as_pgbench(CLOSURES_SQL).replace(":id", f"'{service}'") + ";",
            # The API's one round trip from the insert on (appointments.service.book).
            "\\startpipeline",
            insert.replace(":organization_id", f"'{org}'").replace(":service_id", f"'{service}'")
            + ";",
            jobs + ";",
            webhooks + ";",
            "\\endpipeline",
            "commit;",
            "",
        ]
    )


def load_choices(owner: str, users: list[uuid.UUID], found: list[tuple[datetime, ...]]) -> None:
    """Users and slots numbered for pgbench's random picks; readable by the app's login role
    so the pick is made before the transaction takes the user's identity."""
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("create schema bench")
        conn.execute(
            "create table bench.users (u integer primary key, customer_id uuid, claims text)"
        )
        conn.execute(
            "create table bench.slots (s integer primary key, starts_at timestamptz,"
            " ends_at timestamptz, day_start timestamptz, day_end timestamptz, jobs text)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into bench.users values (%s, %s, %s)",
                [
                    (i, user, json.dumps({"sub": str(user), "role": "authenticated"}))
                    for i, user in enumerate(users, start=1)
                ],
            )
            cursor.executemany(
                "insert into bench.slots values (%s, %s, %s, %s, %s, %s)",
                [(i, *slot, booking_jobs(slot[0])) for i, slot in enumerate(found, start=1)],
            )
        conn.execute(
            "create view bench.choices as select u.u, s.s, u.claims, u.customer_id, s.starts_at,"
            " s.ends_at, s.day_start, s.day_end, s.jobs from bench.users u, bench.slots s"
        )
        conn.execute("grant usage on schema bench to slotease_app")
        conn.execute("grant select on all tables in schema bench to slotease_app")
        conn.execute("analyze")


def wrk_lua(users: list[uuid.UUID], service: uuid.UUID, found: list[tuple[datetime, ...]]) -> str:
    tokens = [
        mint_access_token(BENCH_JWT_SECRET, user_id=u, email="p@bench.test", ttl_seconds=7200)
        for u in users
    ]
    starts = [slot[0].isoformat() for slot in found]
    return (
        "local tokens = {" + ",".join(f'"{t}"' for t in tokens) + "}\n"
        "local starts = {" + ",".join(f'"{s}"' for s in starts) + "}\n"
        "request = function()\n"
        '  local body = \'{"service_id":"' + str(service) + '","starts_at":"\''
        " .. starts[math.random(#starts)] .. '\"}'\n"
        "  local headers = {['Content-Type'] = 'application/json',"
        " ['Authorization'] = 'Bearer ' .. tokens[math.random(#tokens)]}\n"
        "  return wrk.format('POST', '/v1/appointments', headers, body)\n"
        "end\n"
    )


def overbooked_slots(owner: str) -> int:
    with psycopg.connect(owner) as conn:
        row = conn.execute(
            "select count(*) from (select a.starts_at from public.appointments a"
            " join public.services s on s.id = a.service_id"
            " where a.status in ('booked', 'checked_in', 'in_service')"
            " group by a.service_id, a.starts_at, s.capacity having count(*) > s.capacity) full_"
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    parser.add_argument(
        "--timeout", type=int, default=2, help="seconds before wrk counts a request as failed"
    )
    args = parser.parse_args()

    owner = fresh_database("slotease_bench_booking")
    org, service, users = seed(owner)
    found = slots()
    load_choices(owner, users, found)
    results: list[Stats] = []
    with api_server(owner, workers=args.workers) as url:
        lua = wrk_lua(users, service, found)
        wrk(
            "warm-up",
            f"{url}/v1/appointments",
            connections=10,
            seconds=2,
            requests_lua=lua,
            timeout_seconds=args.timeout,
        )
        results.append(
            wrk(
                "API: POST /v1/appointments",
                f"{url}/v1/appointments",
                connections=args.connections,
                seconds=args.seconds,
                requests_lua=lua,
                timeout_seconds=args.timeout,
            )
        )
    script = pgbench_script(org, service).replace(":nslots", str(len(found)))
    results.append(
        pgbench(
            "pgbench: same transaction",
            app_role_conninfo(owner),
            script,
            clients=args.connections,
            seconds=args.seconds,
        )
    )
    api, peer = results
    print(
        f"Machine: {machine()}; {args.connections} connections, {args.seconds} s each,"
        f" {args.workers} API process(es)"
    )
    print("| side | bookings/s | p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    for stats in results:
        print(stats.row())
    print(
        f"\nAPI / pgbench: {api.throughput / peer.throughput:.2f}; "
        f"overbooked slots after both runs: {overbooked_slots(owner)}"
    )


if __name__ == "__main__":
    main()
