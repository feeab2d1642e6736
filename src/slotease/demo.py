"""The demo data set: seeded by `slotease demo` and `slotease serve --demo`.

Seeding is idempotent. Every row has an id derived with uuid5 from stable names and is written
with `on conflict do nothing`. The day-to-day activity (appointments, feedback, tickets) is
drawn from a random generator seeded with the service or queue and the date, so a run on a later
day reproduces the days already seeded and only adds the new ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from random import Random
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from slotease.auth.passwords import hash_password
from slotease.config import Settings
from slotease.db.urls import owner_conninfo
from slotease.kit import crypto

DEMO_PASSWORD = "demo-password"
DEMO_DOMAIN = "demo.slotease.dev"
CUSTOMER_COUNT = 30
PAST_DAYS = 42
UPCOMING_DAYS = 14

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, DEMO_DOMAIN)

Conn = psycopg.Connection[Any]
Hours = tuple[tuple[int, time, time], ...]


def _id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join(str(part) for part in parts))


def _hours(days: Iterable[int], *ranges: tuple[str, str]) -> Hours:
    """Working hours on `days` (0 = Monday), the same ranges each day."""
    return tuple(
        (day, time.fromisoformat(start), time.fromisoformat(end))
        for day in days
        for start, end in ranges
    )


WEEKDAYS = range(5)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    description: str
    duration: int
    interval: int
    hours: Hours
    # The share of seats taken on a past working day; upcoming days are less full.
    fill: float
    capacity: int = 1
    buffer: int = 0
    price: Decimal | None = None


@dataclass(frozen=True)
class QueueSpec:
    name: str
    prefix: str
    service: str | None = None


@dataclass(frozen=True)
class OrgSpec:
    slug: str
    name: str
    kind: str
    timezone: str
    address: str
    latitude: float
    longitude: float
    currency: str
    locale: str
    # Demo phone numbers: this prefix and two digits.
    phone_prefix: str
    # Fixed-date public holidays (month, day, name); the next one becomes a closure.
    holidays: tuple[tuple[int, int, str], ...]
    # Admin first, then the two staff members.
    team: tuple[str, str, str]
    services: tuple[ServiceSpec, ...]
    queues: tuple[QueueSpec, ...]


ORGANIZATIONS: tuple[OrgSpec, ...] = (
    OrgSpec(
        slug="saint-louis-hospital",
        name="Saint-Louis Hospital Outpatient Centre",
        kind="hospital",
        timezone="Europe/Paris",
        address="1 Avenue Claude Vellefaux, 75010 Paris, France",
        latitude=48.8735,
        longitude=2.3686,
        currency="EUR",
        locale="fr",
        phone_prefix="+33 6 12 34 56 ",
        holidays=(
            (1, 1, "New Year's Day"),
            (5, 1, "Labour Day"),
            (5, 8, "Victory in Europe Day"),
            (7, 14, "Bastille Day"),
            (8, 15, "Assumption Day"),
            (11, 1, "All Saints' Day"),
            (11, 11, "Armistice Day"),
            (12, 25, "Christmas Day"),
        ),
        team=("Claire Dubois", "Julien Martin", "Amélie Lefèvre"),
        services=(
            ServiceSpec(
                name="General consultation",
                description="A consultation with a general practitioner.",
                duration=20,
                buffer=10,
                interval=30,
                price=Decimal("30.00"),
                hours=_hours(WEEKDAYS, ("08:30", "12:30"), ("13:30", "17:00")),
                fill=0.7,
            ),
            ServiceSpec(
                name="Blood test",
                description="Blood sampling at the laboratory; fasting tests in the morning.",
                duration=10,
                interval=10,
                capacity=2,
                hours=_hours(range(6), ("08:00", "11:00")),
                fill=0.45,
            ),
            ServiceSpec(
                name="Cardiology consultation",
                description="A specialist consultation, with an ECG when needed.",
                duration=30,
                buffer=15,
                interval=45,
                price=Decimal("60.00"),
                hours=_hours(WEEKDAYS, ("13:30", "17:00")),
                fill=0.8,
            ),
            ServiceSpec(
                name="Vaccination",
                description="Seasonal and travel vaccines.",
                duration=15,
                interval=15,
                price=Decimal("25.00"),
                hours=_hours((2, 4), ("09:00", "12:00")),
                fill=0.5,
            ),
        ),
        queues=(
            QueueSpec(name="Laboratory", prefix="A", service="Blood test"),
            QueueSpec(name="Reception", prefix="B"),
        ),
    ),
    OrgSpec(
        slug="harbor-bank-midtown",
        name="Harbor Savings Bank, Fifth Avenue Branch",
        kind="bank",
        timezone="America/New_York",
        address="350 Fifth Avenue, New York, NY 10118, USA",
        latitude=40.7484,
        longitude=-73.9857,
        currency="USD",
        locale="en",
        phone_prefix="+1 212 555 01",
        holidays=(
            (1, 1, "New Year's Day"),
            (6, 19, "Juneteenth"),
            (7, 4, "Independence Day"),
            (11, 11, "Veterans Day"),
            (12, 25, "Christmas Day"),
        ),
        team=("Michael Johnson", "Sarah Thompson", "David Kim"),
        services=(
            ServiceSpec(
                name="Account opening",
                description="Open a checking or savings account; bring a photo ID.",
                duration=45,
                buffer=15,
                interval=60,
                hours=_hours(WEEKDAYS, ("09:00", "12:30"), ("13:30", "17:00")),
                fill=0.6,
            ),
            ServiceSpec(
                name="Mortgage consultation",
                description="Meet a mortgage advisor about buying or refinancing a home.",
                duration=60,
                interval=60,
                hours=_hours(WEEKDAYS, ("09:00", "12:30"), ("13:30", "17:00")),
                fill=0.4,
            ),
            ServiceSpec(
                name="Safe deposit box access",
                description="Access to your safe deposit box with a banker.",
                duration=15,
                interval=15,
                capacity=2,
                price=Decimal("0.00"),
                hours=_hours(WEEKDAYS, ("09:00", "12:30"), ("13:30", "17:00")),
                fill=0.15,
            ),
        ),
        queues=(
            QueueSpec(name="Tellers", prefix="A"),
            QueueSpec(name="Personal bankers", prefix="B", service="Account opening"),
        ),
    ),
    OrgSpec(
        slug="passport-seva-bengaluru",
        name="Passport Seva Kendra Koramangala",
        kind="government",
        timezone="Asia/Kolkata",
        address="Salarpuria Tower, 80 Feet Road, Koramangala, Bengaluru 560095, India",
        latitude=12.9352,
        longitude=77.6245,
        currency="INR",
        locale="en",
        phone_prefix="+91 98450 123",
        holidays=(
            (1, 26, "Republic Day"),
            (5, 1, "Karnataka Labour Day"),
            (8, 15, "Independence Day"),
            (10, 2, "Gandhi Jayanti"),
            (11, 1, "Karnataka Rajyotsava"),
            (12, 25, "Christmas Day"),
        ),
        team=("Priya Raghavan", "Arjun Mehta", "Kavya Nair"),
        services=(
            ServiceSpec(
                name="Passport application",
                description="New passport or renewal: document check, photo and biometrics.",
                duration=30,
                interval=30,
                capacity=4,
                price=Decimal("1500.00"),
                hours=_hours(WEEKDAYS, ("09:30", "13:00"), ("14:00", "17:30")),
                fill=0.55,
            ),
            ServiceSpec(
                name="Document verification",
                description="Verification of original documents after an online application.",
                duration=15,
                interval=15,
                capacity=2,
                hours=_hours(WEEKDAYS, ("09:30", "13:00"), ("14:00", "17:30"))
                + _hours((5,), ("09:30", "13:00")),
                fill=0.3,
            ),
            ServiceSpec(
                name="Police clearance certificate",
                description="Application for a police clearance certificate.",
                duration=20,
                buffer=10,
                interval=30,
                capacity=2,
                price=Decimal("500.00"),
                hours=_hours(WEEKDAYS, ("09:30", "13:00"), ("14:00", "17:30")),
                fill=0.35,
            ),
        ),
        queues=(
            QueueSpec(name="Passport counters", prefix="A", service="Passport application"),
            QueueSpec(name="Enquiries", prefix="B"),
        ),
    ),
)

CUSTOMER_NAMES = (
    "Emma Laurent", "Lucas Bernard", "Chloé Moreau", "Hugo Girard", "Léa Fontaine",
    "Olivia Brown", "James Wilson", "Sophia Martinez", "Ethan Davis", "Ava Robinson",
    "Noah Clark", "Mia Rodriguez", "Liam O'Connor", "Isabella Rossi", "Mateo García",
    "Aarav Sharma", "Ananya Iyer", "Rohan Gupta", "Diya Patel", "Vikram Reddy",
    "Meera Krishnan", "Ishaan Verma", "Sneha Kulkarni", "Kenji Tanaka", "Yuki Sato",
    "Amina Diallo", "Omar Haddad", "Fatima Zahra", "Lars Eriksson", "Zoe Papadopoulos",
)  # fmt: skip

NOTES = (
    "First visit.",
    "Please call if running late.",
    "Bringing previous results.",
    "Needs wheelchair access.",
    "Prefers to be contacted by SMS.",
    "Interpreter requested.",
)

COMMENTS = {
    5: ("Quick and friendly, thank you!", "Perfectly on time.", "Very helpful staff."),
    4: ("Good service, short wait.", "Clear explanations.", "All done in one visit."),
    3: ("Fine, but I waited 15 minutes.", "OK overall."),
    2: ("Long wait past my booked time.", "Had to come back with another document."),
    1: ("Waited almost an hour.", "Nobody could answer my questions."),
}
# Ratings are skewed positive, as they are in practice.
RATINGS = (5, 4, 3, 2, 1)
RATING_WEIGHTS = (50, 30, 10, 6, 4)

PRIORITIES = (0, 0, 0, 0, 1, 2, 5)
COUNTERS = ("Desk 1", "Desk 2")

# fmt: off
SERVICE_COLUMNS = (
    "id", "organization_id", "name", "description", "duration_minutes", "capacity",
    "buffer_minutes", "slot_interval_minutes", "min_notice_minutes", "max_advance_days",
    "price", "currency",
)
APPOINTMENT_COLUMNS = (
    "id", "organization_id", "service_id", "customer_id", "starts_at", "ends_at", "status",
    "notes", "booked_by", "cancelled_at", "created_at", "updated_at",
)
FEEDBACK_COLUMNS = (
    "id", "organization_id", "appointment_id", "appointment_starts_at", "service_id",
    "customer_id", "rating", "comment", "created_at",
)
TICKET_COLUMNS = (
    "id", "organization_id", "queue_id", "user_id", "service_date", "number", "priority",
    "status", "counter", "line_position_at", "estimated_wait_minutes", "called_at",
    "serving_at", "finished_at", "created_at", "updated_at",
)
# fmt: on


@dataclass(frozen=True)
class DemoUser:
    key: str
    email: str
    full_name: str
    phone: str
    timezone: str
    locale: str


def _team(org: OrgSpec) -> list[tuple[DemoUser, str]]:
    roles = (("admin", "admin"), ("staff1", "staff"), ("staff2", "staff"))
    return [
        (
            DemoUser(
                key=f"{org.slug}/{local}",
                email=f"{local}@{org.slug}.{DEMO_DOMAIN}",
                full_name=name,
                phone=f"{org.phone_prefix}{index:02d}",
                timezone=org.timezone,
                locale=org.locale,
            ),
            role,
        )
        for index, (name, (local, role)) in enumerate(zip(org.team, roles, strict=True))
    ]


def _customers() -> list[DemoUser]:
    """Customers live near one of the organizations, in turn; all of them book everywhere."""
    customers = []
    for n, name in enumerate(CUSTOMER_NAMES[:CUSTOMER_COUNT], start=1):
        home = ORGANIZATIONS[(n - 1) % len(ORGANIZATIONS)]
        customers.append(
            DemoUser(
                key=f"customer{n:02d}",
                email=f"customer{n:02d}@{DEMO_DOMAIN}",
                full_name=name,
                phone=f"{home.phone_prefix}{n + 10:02d}",
                timezone=home.timezone,
                locale=home.locale,
            )
        )
    return customers


def seed_demo(settings: Settings) -> str:
    """Seed the demo data set (again: it changes nothing) and describe it with its accounts."""
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(owner_conninfo(settings)) as conn:
        # service_role bypasses RLS, so this works where the owner is not a superuser.
        conn.execute("set local role service_role")
        # The capacity trigger runs once per booked row; with a custom plan it would plan its
        # query over every appointments partition each time, most of the seeding time.
        conn.execute("set local plan_cache_mode = force_generic_plan")
        conn.execute("select app.ensure_monthly_partitions('public.appointments', 3, 12)")
        org_ids = _seed_organizations(conn)
        user_ids = _seed_users(conn, now)
        customers = [user_ids[c.email] for c in _customers()]
        for org in ORGANIZATIONS:
            org_id = org_ids[org.slug]
            for user, role in _team(org):
                conn.execute(
                    "insert into public.organization_members (organization_id, user_id, role)"
                    " values (%(org_id)s, %(user_id)s, %(role)s) on conflict do nothing",
                    {"org_id": org_id, "user_id": user_ids[user.email], "role": role},
                )
            service_ids = _seed_services(conn, org, org_id, now)
            _seed_appointments(conn, org, org_id, service_ids, customers, now)
            _seed_queues(conn, org, org_id, service_ids, customers, now)
        # The dashboards read history from the analytics views: show it from the first page.
        conn.execute("select app.refresh_analytics_views()")
        return _summary(conn, list(org_ids.values()))


def _seed_organizations(conn: Conn) -> dict[str, uuid.UUID]:
    _insert(
        conn,
        "public.organizations",
        ("id", "name", "slug", "kind", "timezone", "address", "location", "is_active"),
        (
            (
                _id("organization", org.slug),
                org.name,
                org.slug,
                org.kind,
                org.timezone,
                org.address,
                f"({org.longitude},{org.latitude})",
                True,
            )
            for org in ORGANIZATIONS
        ),
    )
    rows = conn.execute(
        "select slug, id from public.organizations where slug = any(%(slugs)s)",
        {"slugs": [org.slug for org in ORGANIZATIONS]},
    ).fetchall()
    return dict(rows)


def _seed_users(conn: Conn, now: datetime) -> dict[str, uuid.UUID]:
    """All demo users by email; a user created earlier with a demo email keeps its id."""
    users = [user for org in ORGANIZATIONS for user, _ in _team(org)] + _customers()
    # One hash for everyone: they share the documented password, and argon2 is slow on purpose.
    password_hash = hash_password(DEMO_PASSWORD)
    _insert(
        conn,
        "auth.users",
        ("id", "email", "encrypted_password", "email_confirmed_at", "raw_app_meta_data"),
        (
            (
                _id("user", user.key),
                user.email,
                password_hash,
                now,
                Jsonb({"provider": "email", "providers": ["email"]}),
            )
            for user in users
        ),
    )
    rows = conn.execute(
        "select lower(email), id from auth.users where lower(email) = any(%(emails)s)",
        {"emails": [user.email for user in users]},
    ).fetchall()
    ids: dict[str, uuid.UUID] = dict(rows)
    _insert(
        conn,
        "public.user_profiles",
        ("user_id", "full_name", "phone", "timezone", "locale"),
        (
            (
                ids[user.email],
                user.full_name,
                crypto.encrypt(
                    user.phone, context=crypto.field_context(crypto.PHONE, ids[user.email])
                ),
                user.timezone,
                user.locale,
            )
            for user in users
        ),
    )
    return ids


def _next_holiday(org: OrgSpec, today: date) -> tuple[date, str]:
    return min(
        (date(year, month, day), name)
        for year in (today.year, today.year + 1)
        for month, day, name in org.holidays
        if date(year, month, day) > today
    )


def _seed_services(
    conn: Conn, org: OrgSpec, org_id: uuid.UUID, now: datetime
) -> dict[str, uuid.UUID]:
    zone = ZoneInfo(org.timezone)
    service_ids = {spec.name: _id("service", org.slug, spec.name) for spec in org.services}
    _insert(
        conn,
        "public.services",
        SERVICE_COLUMNS,
        (
            (
                service_ids[spec.name],
                org_id,
                spec.name,
                spec.description,
                spec.duration,
                spec.capacity,
                spec.buffer,
                spec.interval,
                60,
                60,
                spec.price,
                org.currency if spec.price is not None else None,
            )
            for spec in org.services
        ),
    )
    _insert(
        conn,
        "public.service_working_hours",
        ("id", "organization_id", "service_id", "weekday", "start_time", "end_time"),
        (
            (
                _id("hours", org.slug, spec.name, weekday, start),
                org_id,
                service_ids[spec.name],
                weekday,
                start,
                end,
            )
            for spec in org.services
            for weekday, start, end in spec.hours
        ),
    )
    holiday, reason = _next_holiday(org, now.astimezone(zone).date())
    starts = datetime.combine(holiday, time(), zone)
    ends = datetime.combine(holiday + timedelta(days=1), time(), zone)
    _insert(
        conn,
        "public.service_closures",
        ("id", "organization_id", "service_id", "starts_at", "ends_at", "reason"),
        (
            (
                _id("closure", org.slug, spec.name, holiday),
                org_id,
                service_ids[spec.name],
                starts,
                ends,
                reason,
            )
            for spec in org.services
        ),
    )
    return service_ids


def _slots(spec: ServiceSpec, day: date, zone: ZoneInfo) -> Iterator[datetime]:
    """The slot grid of one day: from each opening, every interval, while the service fits."""
    for weekday, start, end in spec.hours:
        if weekday != day.weekday():
            continue
        slot = datetime.combine(day, start, zone)
        close = datetime.combine(day, end, zone)
        while slot + timedelta(minutes=spec.duration) <= close:
            yield slot
            slot += timedelta(minutes=spec.interval)


def _seed_appointments(
    conn: Conn,
    org: OrgSpec,
    org_id: uuid.UUID,
    service_ids: dict[str, uuid.UUID],
    customers: Sequence[uuid.UUID],
    now: datetime,
) -> None:
    zone = ZoneInfo(org.timezone)
    today = now.astimezone(zone).date()
    holiday, _ = _next_holiday(org, today)
    appointments: list[tuple[object, ...]] = []
    feedback: list[tuple[object, ...]] = []
    days = [today + timedelta(days=offset) for offset in range(-PAST_DAYS, UPCOMING_DAYS + 1)]
    for spec in org.services:
        service_id = service_ids[spec.name]
        for day in days:
            # Today belongs to the queues; the holiday is closed.
            if day in (today, holiday):
                continue
            past = day < today
            fill = spec.fill if past else spec.fill * 0.6
            rng = Random(f"{org.slug}/{spec.name}/{day.isoformat()}")
            for starts in _slots(spec, day, zone):
                seated = rng.sample(customers, spec.capacity)
                for seat, customer in enumerate(seated):
                    # Every seat draws the same values whatever its outcome, so that one
                    # slot's outcome never shifts the next slot's.
                    taken, outcome, lead, with_note, note, rated = (rng.random() for _ in range(6))
                    rating = rng.choices(RATINGS, RATING_WEIGHTS)[0]
                    comment = rng.choice((None, *COMMENTS[rating]))
                    if taken >= fill:
                        continue
                    ends = starts + timedelta(minutes=spec.duration)
                    created = min(starts - timedelta(hours=2 + lead * 14 * 24), now)
                    if past:
                        status = (
                            "completed"
                            if outcome < 0.8
                            else "cancelled"
                            if outcome < 0.91
                            else "no_show"
                        )
                    else:
                        status = "booked" if outcome < 0.95 else "cancelled"
                    cancelled_at = (
                        min(created + (starts - created) / 2, now)
                        if status == "cancelled"
                        else None
                    )
                    updated = min(ends, now) if past else (cancelled_at or created)
                    appointment_id = _id("appointment", service_id, starts.isoformat(), seat)
                    sealed_to = crypto.field_context(crypto.NOTES, appointment_id)
                    appointments.append(
                        (
                            appointment_id,
                            org_id,
                            service_id,
                            customer,
                            starts,
                            ends,
                            status,
                            crypto.encrypt(NOTES[int(note * len(NOTES))], context=sealed_to)
                            if with_note < 0.1
                            else None,
                            customer,
                            cancelled_at,
                            created,
                            updated,
                        )
                    )
                    if status == "completed" and rated < 0.4:
                        feedback.append(
                            (
                                _id("feedback", appointment_id),
                                org_id,
                                appointment_id,
                                starts,
                                service_id,
                                customer,
                                rating,
                                crypto.encrypt_optional(
                                    comment,
                                    context=crypto.field_context(crypto.COMMENT, appointment_id),
                                ),
                                min(ends + timedelta(minutes=30 + int(rated * 600)), now),
                            )
                        )
    # The capacity trigger runs before the conflict is found: skip the known rows first.
    _insert(
        conn,
        "public.appointments",
        APPOINTMENT_COLUMNS,
        appointments,
        where="not exists (select 1 from public.appointments a where a.id = s.id"
        " and a.starts_at = s.starts_at and a.organization_id = s.organization_id)",
    )
    # Only for appointments completed in the database: a run on a later day must not rate
    # an appointment that an earlier run left as booked.
    _insert(
        conn,
        "public.feedback",
        FEEDBACK_COLUMNS,
        feedback,
        where="exists (select 1 from public.appointments a where a.id = s.appointment_id"
        " and a.starts_at = s.appointment_starts_at and a.organization_id = s.organization_id"
        " and a.status = 'completed')",
    )


def _seed_queues(
    conn: Conn,
    org: OrgSpec,
    org_id: uuid.UUID,
    service_ids: dict[str, uuid.UUID],
    customers: Sequence[uuid.UUID],
    now: datetime,
) -> None:
    today = now.astimezone(ZoneInfo(org.timezone)).date()
    queue_ids = {spec.prefix: _id("queue", org.slug, spec.prefix) for spec in org.queues}
    _insert(
        conn,
        "public.queues",
        ("id", "organization_id", "service_id", "name", "prefix"),
        (
            (
                queue_ids[spec.prefix],
                org_id,
                service_ids[spec.service] if spec.service else None,
                spec.name,
                spec.prefix,
            )
            for spec in org.queues
        ),
    )
    tickets: list[tuple[object, ...]] = []
    for spec in org.queues:
        rng = Random(f"{org.slug}/queue/{spec.prefix}/{today.isoformat()}")
        tickets.extend(_tickets(rng, org_id, queue_ids[spec.prefix], today, customers, now))
    _insert(
        conn,
        "public.tickets",
        TICKET_COLUMNS,
        tickets,
    )
    # Tickets taken at reception next go on after the seeded ones, as if those had been drawn
    # from the same counter.
    conn.execute(
        "insert into public.queue_counters (organization_id, queue_id, service_date, last_number)"
        " select organization_id, queue_id, service_date, max(number) from public.tickets"
        " where organization_id = %(org_id)s group by organization_id, queue_id, service_date"
        " on conflict on constraint queue_counters_pkey"
        " do update set last_number = greatest(queue_counters.last_number, excluded.last_number)",
        {"org_id": org_id},
    )


def _tickets(
    rng: Random,
    org_id: uuid.UUID,
    queue_id: uuid.UUID,
    today: date,
    customers: Sequence[uuid.UUID],
    now: datetime,
) -> list[tuple[object, ...]]:
    """Today's line so far: served tickets (one no-show among them), one at Desk 1, one just
    called to Desk 2, and people still waiting, numbered in the order they joined."""
    served = rng.randint(7, 12)
    waiting = rng.randint(4, 7)
    statuses = ["served"] * served + ["serving", "called"] + ["waiting"] * waiting
    statuses[rng.randrange(1, served)] = "no_show"
    total = len(statuses)
    gap = timedelta(minutes=rng.randint(4, 7))
    # Called this long after joining; shorter than the gaps of those still waiting, so every
    # call is in the past.
    wait = timedelta(minutes=rng.randint(8, 15))
    holders = rng.sample(customers, total)
    joined = [now - gap * (total - index) for index in range(total)]
    waiting_order = sorted(
        (index for index, status in enumerate(statuses) if status == "waiting"),
        key=lambda index: joined[index],
    )
    priorities = {index: rng.choice(PRIORITIES) for index in waiting_order}
    waiting_order.sort(key=lambda index: (-priorities[index], joined[index]))
    rows: list[tuple[object, ...]] = []
    for index, status in enumerate(statuses):
        walk_in = rng.random() < 0.25
        service_minutes = rng.randint(2, 4)
        called = joined[index] + wait
        called_at = None if status == "waiting" else called
        serving_at = called + timedelta(minutes=1) if status in ("served", "serving") else None
        finished_at = {
            "served": called + timedelta(minutes=1 + service_minutes),
            "no_show": called + timedelta(minutes=5),
        }.get(status)
        counter = (
            None
            if status == "waiting"
            else {"serving": "Desk 1", "called": "Desk 2"}.get(status, COUNTERS[index % 2])
        )
        position = waiting_order.index(index) + 1 if status == "waiting" else None
        rows.append(
            (
                _id("ticket", queue_id, today, index + 1),
                org_id,
                queue_id,
                None if walk_in else holders[index],
                today,
                index + 1,
                priorities.get(index, 0),
                status,
                counter,
                joined[index],
                position * gap.seconds // 60 if position else None,
                called_at,
                serving_at,
                finished_at,
                joined[index],
                finished_at or serving_at or called_at or joined[index],
            )
        )
    return rows


def _insert(
    conn: Conn,
    table: str,
    columns: tuple[str, ...],
    rows: Iterable[Sequence[object]],
    where: LiteralString = "true",
) -> None:
    """Insert rows in bulk through COPY into a temporary table, keeping any row already there.

    `where` filters the staged rows, as `s`, before the insert."""
    schema, name = table.split(".")
    staged = sql.Identifier(f"demo_{name}")
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(sql.SQL("drop table if exists {}").format(staged))
    conn.execute(
        sql.SQL("create temp table {} on commit drop as select {} from {} with no data").format(
            staged, column_list, sql.Identifier(schema, name)
        )
    )
    with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(staged, column_list)) as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(
        sql.SQL("insert into {} ({}) select {} from {} s where {} on conflict do nothing").format(
            sql.Identifier(schema, name),
            column_list,
            sql.SQL(", ").join(sql.Identifier("s", column) for column in columns),
            staged,
            sql.SQL(where),
        )
    )


def _summary(conn: Conn, org_ids: list[uuid.UUID]) -> str:
    counts = conn.execute(
        """
        select
          (select count(*) from public.services where organization_id = any(%(orgs)s)),
          (select count(*) from public.appointments
            where organization_id = any(%(orgs)s) and starts_at < now()),
          (select count(*) from public.appointments
            where organization_id = any(%(orgs)s) and starts_at >= now()),
          (select count(*) from public.feedback where organization_id = any(%(orgs)s)),
          (select count(*) from public.queues where organization_id = any(%(orgs)s)),
          (select count(*) from public.tickets
            where organization_id = any(%(orgs)s) and status in ('waiting', 'called', 'serving'))
        """,
        {"orgs": org_ids},
    ).fetchone()
    assert counts is not None
    services, past, upcoming, rated, queues, active_tickets = counts
    lines = [
        "Demo data is ready (seeding again changes nothing).",
        f"  {len(ORGANIZATIONS)} organizations, {services} services, {queues} queues"
        f" ({active_tickets} tickets in line now)",
        f"  {past} past appointments ({rated} with feedback), {upcoming} upcoming",
        f"Demo accounts, all with the password {DEMO_PASSWORD!r}:",
    ]
    for org in ORGANIZATIONS:
        admin, *staff = (user.email for user, _ in _team(org))
        lines.append(f"  {org.name} ({org.timezone})")
        lines.append(f"    admin {admin}; staff {', '.join(staff)}")
    first, *_, last = _customers()
    lines.append(f"  customers {first.email} ... {last.email}")
    lines.append("API docs: /docs")
    return "\n".join(lines)
