"""The campaign's data: vaccination centres, their services and walk-in queues, customers and
counter staff, and the plan the locustfile reads (ids and signed tokens, nothing else)."""

from __future__ import annotations

import uuid

import psycopg

from bench.campaign.plan import Centre, Counter, Person, Plan
from bench.server import BENCH_JWT_SECRET
from slotease.auth.tokens import mint_access_token

ZONE = "Europe/Paris"
CENTRES = 3
SERVICES_PER_CENTRE = 2
COUNTERS_PER_QUEUE = 3
# A vaccination line: a 10-minute slot every 10 minutes, 08:00-20:00 every day, a handful of
# boxes in parallel, two weeks ahead. 72 slots a day of 6 places: about 6,000 places per
# service over the window, far more than the campaign's users, but the earliest slots fill.
SLOT_MINUTES = 10
CAPACITY = 6
ADVANCE_DAYS = 14


def seed(owner: str, *, customers: int, slices: int, token_seconds: int) -> Plan:
    """Insert the campaign as the owner and mint every person's access token."""
    with psycopg.connect(owner, autocommit=True) as conn:
        centres: list[Centre] = []
        for number in range(1, CENTRES + 1):
            org = conn.execute(
                "insert into public.organizations (name, slug, kind, timezone)"
                " values (%(name)s, %(slug)s, 'hospital', %(zone)s) returning id",
                {
                    "name": f"Vaccination centre {number}",
                    "slug": f"vaccination-centre-{number}",
                    "zone": ZONE,
                },
            ).fetchone()[0]  # type: ignore[index]
            services = [
                conn.execute(
                    "insert into public.services (organization_id, name, duration_minutes,"
                    " capacity, slot_interval_minutes, max_advance_days)"
                    " values (%(org)s, %(name)s, %(minutes)s, %(capacity)s, %(minutes)s,"
                    " %(days)s) returning id",
                    {
                        "org": org,
                        "name": f"Vaccination, dose {dose}",
                        "minutes": SLOT_MINUTES,
                        "capacity": CAPACITY,
                        "days": ADVANCE_DAYS,
                    },
                ).fetchone()[0]  # type: ignore[index]
                for dose in range(1, SERVICES_PER_CENTRE + 1)
            ]
            conn.execute(
                "insert into public.service_working_hours (organization_id, service_id,"
                " weekday, start_time, end_time)"
                " select %(org)s, s, d, '08:00', '20:00'"
                " from unnest(%(services)s::uuid[]) s, generate_series(0, 6) d",
                {"org": org, "services": services},
            )
            queue = conn.execute(
                "insert into public.queues (organization_id, name, prefix)"
                " values (%(org)s, 'Walk-in vaccination', 'V') returning id",
                {"org": org},
            ).fetchone()[0]  # type: ignore[index]
            centres.append(Centre(str(org), [str(s) for s in services], str(queue)))
        people = conn.execute(
            "insert into auth.users (email) select 'person' || g || '@campaign.test'"
            " from generate_series(1, %(n)s) g returning id, email",
            {"n": customers},
        ).fetchall()
        counters: list[Counter] = []
        for number, centre in enumerate(centres, start=1):
            for desk in range(1, COUNTERS_PER_QUEUE + 1):
                email = f"desk{desk}.centre{number}@campaign.test"
                staff = conn.execute(
                    "insert into auth.users (email) values (%(email)s) returning id",
                    {"email": email},
                ).fetchone()[0]  # type: ignore[index]
                conn.execute(
                    "insert into public.organization_members (organization_id, user_id, role)"
                    " values (%(org)s, %(user)s, 'staff')",
                    {"org": centre.id, "user": staff},
                )
                counters.append(
                    Counter(_token(staff, email, token_seconds), centre.queue, f"Box {desk}")
                )
        conn.execute("analyze")
    return Plan(
        centres=centres,
        customers=[Person(str(user), _token(user, email, token_seconds)) for user, email in people],
        counters=counters,
        slices=slices,
        window_days=7,
        timezone=ZONE,
    )


def _token(user: uuid.UUID, email: str, seconds: int) -> str:
    return mint_access_token(BENCH_JWT_SECRET, user_id=user, email=email, ttl_seconds=seconds)
