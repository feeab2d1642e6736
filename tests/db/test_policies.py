"""Every policy of every table, tried as the database roles the API uses.

Each table lists which seeded rows (by label, see tests/db/world.py) each principal may read,
insert, update and delete. A table the catalog has and this list lacks fails
`test_every_table_is_covered`, so a new table cannot ship without its policies being tried."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.db.acting import AsyncConn, acting_as
from tests.db.world import CUSTOMER_ROWS, PRINCIPALS, USER_NAMES, World
from tests.factories import Owner

pytestmark = pytest.mark.anyio

DENIED = "permission denied"
Outcome = frozenset[str] | str
NONE: frozenset[str] = frozenset()
# Errors raised after a row got past row-level security: the policy allowed the operation and
# a constraint or trigger then refused it (a foreign key, a duplicate, the last admin).
PAST_THE_POLICY = {"23503", "23505", "SEADM"}


def rows(*labels: str) -> frozenset[str]:
    return frozenset(labels)


def expect(default: Outcome = NONE, **principals: Outcome) -> dict[str, Outcome]:
    unknown = set(principals) - set(PRINCIPALS)
    assert not unknown, unknown
    return {p: principals.get(p, default) for p in PRINCIPALS}


@dataclass(frozen=True)
class Table:
    name: str
    key: str  # SQL naming a seeded row, matching the keys of World.labels[name]
    touch: str  # a no-op assignment: an update that only asks "may I?"
    insert: str
    targets: tuple[str, ...]  # see World.params
    select: dict[str, Outcome]
    inserts: dict[str, Outcome]
    updates: dict[str, Outcome]
    deletes: dict[str, Outcome]


SIGNED_IN_USERS = ("stranger", "customer_a", "staff_a", "admin_a", "super")
MEMBERS_OF_A = ("staff_a", "admin_a", "key_staff_a", "key_admin_a")
ADMINS_OF_A = ("admin_a", "key_admin_a")
A_CUSTOMERS = rows("A:customer_a", "A:customer_b")
OWN = rows("A:customer_a")
CUSTOMER_TARGETS = ("A:customer_a", "A:customer_b", "B:customer_a", "B:customer_b")
# The stranger deals with no organization: staff may neither book for nor message them.
DEALT_WITH_TARGETS = (*CUSTOMER_TARGETS, "A:stranger")
ACTIVE = rows("A", "B")
ALL_FOUR = rows("A", "A-off", "B", "B-off")
SEEN_BY_A = rows("A", "A-off", "B")
NOTHING = expect()


def admins_of_a(a_rows: Outcome, all_rows: Outcome, default: Outcome = NONE) -> dict[str, Outcome]:
    return expect(default, super=all_rows, **dict.fromkeys(ADMINS_OF_A, a_rows))


def members_of_a(a_rows: Outcome, all_rows: Outcome, **others: Outcome) -> dict[str, Outcome]:
    return expect(**{"super": all_rows, **dict.fromkeys(MEMBERS_OF_A, a_rows), **others})


def customer_table(
    name: str, touch: str, insert: str, *, staff_insert: bool, targets: tuple[str, ...]
) -> Table:
    """Appointments and tickets: the customer's own rows, and everything of the organization
    for its staff and API keys."""
    everything = rows(*CUSTOMER_ROWS)
    return Table(
        name=name,
        key="id",
        touch=touch,
        insert=insert,
        targets=targets,
        select=members_of_a(A_CUSTOMERS, everything, anon=DENIED, customer_a=OWN),
        inserts=members_of_a(
            A_CUSTOMERS if staff_insert else NONE,
            rows(*targets),
            customer_a=rows("A:customer_a", "B:customer_a"),
            stranger=rows(*targets) & {"A:stranger"},
        ),
        updates=members_of_a(A_CUSTOMERS, everything, customer_a=OWN),
        deletes=NOTHING,
    )


def admin_managed(name: str, touch: str, insert: str, select: dict[str, Outcome]) -> Table:
    """Services, queues and schedules: admins of the organization manage them."""
    a_rows = rows("A", "A-off") if "A-off" in select["super"] else rows("A")
    return Table(
        name=name,
        key="id",
        touch=touch,
        insert=insert,
        targets=("A", "B"),
        select=select,
        inserts=admins_of_a(rows("A"), rows("A", "B")),
        updates=admins_of_a(a_rows, select["super"]),
        deletes=admins_of_a(a_rows, select["super"]),
    )


def read_only(
    name: str,
    key: str,
    touch: str,
    insert: str,
    target: str,
    select: dict[str, Outcome] | None = None,
) -> Table:
    """Tables the API roles may at most read (by default, not even that)."""
    select = select or expect(DENIED)
    return Table(name, key, touch, insert, (target,), select, NOTHING, NOTHING, NOTHING)


PUBLIC_LISTING = expect(ACTIVE, super=ALL_FOUR, **dict.fromkeys(MEMBERS_OF_A, SEEN_BY_A))
MEMBERS_A = rows("A:staff_a", "A:admin_a")
ALL_MEMBERS = MEMBERS_A | {"B:staff_b", "B:admin_b"}
PEOPLE_OF_A = rows("staff_a", "admin_a", "customer_a", "customer_b")
EVENTS_OF_A = rows("A:customer_a", "A:customer_b", "A:-")
ADMINS_ONLY = admins_of_a(rows("A"), rows("A", "B")) | {"anon": DENIED}

TABLES = (
    Table(
        name="public.organizations",
        key="id",
        touch="name = name",
        insert="insert into public.organizations (name, slug, kind, timezone)"
        " values ('New', %(slug)s, 'bank', 'UTC')",
        targets=("new",),
        select=expect(ACTIVE, super=rows("A", "B", "C")),
        inserts=expect(**dict.fromkeys(SIGNED_IN_USERS, rows("new"))),
        updates=admins_of_a(rows("A"), rows("A", "B", "C")),
        deletes=expect(super=rows("A", "B", "C")),
    ),
    Table(
        name="public.organization_members",
        key="organization_id || ':' || user_id",
        touch="role = role",
        insert="insert into public.organization_members (organization_id, user_id, role)"
        " values (%(org)s, %(user)s, 'staff')",
        targets=("A", "B"),
        select=members_of_a(MEMBERS_A, ALL_MEMBERS, anon=DENIED),
        inserts=admins_of_a(rows("A"), rows("A", "B")),
        updates=admins_of_a(MEMBERS_A, ALL_MEMBERS),
        deletes=admins_of_a(MEMBERS_A, ALL_MEMBERS),
    ),
    Table(
        name="public.user_profiles",
        key="user_id",
        touch="full_name = full_name",
        insert="insert into public.user_profiles (user_id) values (%(user)s)",
        targets=("customer_a", "customer_b"),
        select=members_of_a(
            PEOPLE_OF_A,
            rows(*USER_NAMES),
            anon=DENIED,
            stranger=rows("stranger"),
            customer_a=rows("customer_a"),
        ),
        inserts=expect(customer_a=rows("customer_a")),
        updates=expect(**{name: rows(name) for name in SIGNED_IN_USERS}),
        deletes=NOTHING,
    ),
    admin_managed(
        "public.services",
        "name = name",
        "insert into public.services (organization_id, name, duration_minutes,"
        " slot_interval_minutes) values (%(org)s, 'New', 30, 30)",
        PUBLIC_LISTING,
    ),
    admin_managed(
        "public.service_working_hours",
        "end_time = end_time",
        "insert into public.service_working_hours"
        " (organization_id, service_id, weekday, start_time, end_time)"
        " values (%(org)s, %(service)s, 6, '08:00', '09:00')",
        expect(ALL_FOUR),
    ),
    admin_managed(
        "public.service_closures",
        "reason = reason",
        "insert into public.service_closures (organization_id, service_id, starts_at, ends_at)"
        " values (%(org)s, %(service)s, %(starts_at)s, %(starts_at)s + interval '1 hour')",
        expect(ACTIVE),
    ),
    customer_table(
        "public.appointments",
        "notes = notes",
        "insert into public.appointments"
        " (organization_id, service_id, customer_id, starts_at, ends_at) values"
        " (%(org)s, %(service)s, %(user)s, %(starts_at)s, %(starts_at)s + interval '30 minutes')",
        staff_insert=True,
        targets=DEALT_WITH_TARGETS,
    ),
    admin_managed(
        "public.queues",
        "name = name",
        "insert into public.queues (organization_id, name, prefix) values (%(org)s, 'New', 'N')",
        PUBLIC_LISTING,
    ),
    customer_table(
        "public.tickets",
        "counter = counter",
        "insert into public.tickets (organization_id, queue_id, user_id, service_date, number)"
        " values (%(org)s, %(queue)s, %(user)s, current_date, %(number)s)",
        staff_insert=True,
        targets=DEALT_WITH_TARGETS,
    ),
    # Invitations: admins manage their organization's, the invitee (customer_a, by email) sees
    # and declines theirs; nobody rewrites one (accepting goes through a function).
    Table(
        name="public.invitations",
        key="id",
        touch="role = role",
        insert="insert into public.invitations (organization_id, email, role, token_hash)"
        " values (%(org)s, 'new@example.com', 'staff', %(secret)s)",
        targets=("A", "B"),
        select=admins_of_a(rows("A"), rows("A", "B")) | {"anon": DENIED, "customer_a": rows("A")},
        inserts=admins_of_a(rows("A"), rows("A", "B")),
        updates=NOTHING,
        deletes=admins_of_a(rows("A"), rows("A", "B")) | {"customer_a": rows("A")},
    ),
    Table(
        name="public.feedback",
        key="id",
        touch="comment = comment",
        insert="insert into public.feedback (organization_id, appointment_id,"
        " appointment_starts_at, service_id, customer_id, rating) values (%(org)s,"
        " %(appointment)s, %(appointment_starts_at)s, %(service)s, %(user)s, 4)",
        targets=CUSTOMER_TARGETS,
        select=members_of_a(A_CUSTOMERS, rows(*CUSTOMER_ROWS), anon=DENIED, customer_a=OWN),
        # Only on one's own appointment: the feedback trigger refuses anyone else's.
        inserts=expect(customer_a=rows("A:customer_a")),
        updates=NOTHING,
        deletes=NOTHING,
    ),
    Table(
        name="public.notifications",
        key="id",
        touch="read_at = read_at",
        insert="insert into public.notifications (organization_id, user_id, channel)"
        " values (%(org)s, %(user)s, 'email')",
        targets=DEALT_WITH_TARGETS,
        select=expect(anon=DENIED, customer_a=OWN, super=rows(*CUSTOMER_ROWS)),
        inserts=members_of_a(A_CUSTOMERS, rows(*DEALT_WITH_TARGETS)),
        updates=expect(customer_a=OWN),
        deletes=NOTHING,
    ),
    # Customers join and leave; only staff rewrite an entry (offers go through a function).
    Table(
        name="public.waitlist_entries",
        key="id",
        touch="status = status",
        insert="insert into public.waitlist_entries (service_id, user_id, starts_at)"
        " values (%(service)s, %(user)s, %(starts_at)s)",
        targets=DEALT_WITH_TARGETS,
        select=members_of_a(A_CUSTOMERS, rows(*CUSTOMER_ROWS), anon=DENIED, customer_a=OWN),
        inserts=members_of_a(
            A_CUSTOMERS,
            rows(*DEALT_WITH_TARGETS),
            customer_a=rows("A:customer_a", "B:customer_a"),
            stranger=rows("A:stranger"),
        ),
        updates=members_of_a(A_CUSTOMERS, rows(*CUSTOMER_ROWS)),
        deletes=members_of_a(A_CUSTOMERS, rows(*CUSTOMER_ROWS), customer_a=OWN),
    ),
    Table(
        name="public.calendar_feed_tokens",
        key="user_id",
        touch="created_at = created_at",
        insert="insert into public.calendar_feed_tokens (user_id, token_hash)"
        " values (%(user)s, %(secret)s)",
        targets=("customer_a", "customer_b"),
        select=expect(anon=DENIED, customer_a=rows("customer_a")),
        inserts=expect(customer_a=rows("customer_a")),
        updates=expect(customer_a=rows("customer_a")),
        deletes=expect(customer_a=rows("customer_a")),
    ),
    # Consents are the person's own, and their history is never rewritten, by anyone.
    Table(
        name="public.consent_events",
        key="id",
        touch="granted = granted",
        insert="insert into public.consent_events (user_id, purpose, granted, source)"
        " values (%(user)s, 'sms', false, 'api')",
        targets=("customer_a", "customer_b"),
        select=expect(anon=DENIED, customer_a=rows("customer_a")),
        inserts=expect(customer_a=rows("customer_a")),
        updates=NOTHING,
        deletes=NOTHING,
    ),
    # Preferences and idempotency keys are private to their owner, super admins included:
    # the API reads them through RLS alone, so a wider policy would mix other people's rows
    # into the caller's own.
    Table(
        name="public.notification_preferences",
        key="user_id",
        touch="email = email",
        insert="insert into public.notification_preferences (user_id) values (%(user)s)",
        targets=("customer_a", "customer_b"),
        select=expect(anon=DENIED, customer_a=rows("customer_a")),
        inserts=expect(customer_a=rows("customer_a")),
        updates=expect(customer_a=rows("customer_a")),
        deletes=NOTHING,
    ),
    Table(
        name="public.analytics_events",
        key="id",
        touch="properties = properties",
        insert="insert into public.analytics_events (organization_id, user_id, event_type)"
        " values (%(org)s, %(user)s, 'page.view')",
        targets=("A:customer_a", "B:customer_a", "A:customer_b", "A:-", "B:-"),
        select=admins_of_a(EVENTS_OF_A, EVENTS_OF_A | {"B:customer_b", "B:-"}, DENIED)
        | {p: NONE for p in PRINCIPALS if p not in ("anon", "super", *ADMINS_OF_A)},
        # Only members record events for an organization (migration 0012).
        inserts=expect(**dict.fromkeys(MEMBERS_OF_A, rows("A:-"))),
        updates=NOTHING,
        deletes=NOTHING,
    ),
    # Reports: requested and read by admins, filled in only by the generator (service_role).
    Table(
        name="public.analytics_reports",
        key="id",
        touch="status = status",
        insert="insert into public.analytics_reports (organization_id, kind, format, from_date,"
        " to_date) values (%(org)s, 'queues', 'json', current_date, current_date)",
        targets=("A", "B"),
        select=ADMINS_ONLY,
        inserts=admins_of_a(rows("A"), rows("A", "B")),
        updates=NOTHING,
        deletes=NOTHING,
    ),
    admin_managed(
        "public.api_keys",
        "name = name",
        "insert into public.api_keys (organization_id, name, role, prefix, key_hash)"
        " values (%(org)s, 'new', 'staff', 'sk_', %(secret)s)",
        ADMINS_ONLY,
    ),
    Table(
        name="public.idempotency_keys",
        key="principal || '/' || idempotency_key",
        touch="response_status = response_status",
        insert="insert into public.idempotency_keys (principal, idempotency_key,"
        " request_method, request_path, request_hash)"
        " values (%(principal)s, 'k2', 'POST', '/x', 'h')",
        targets=("customer_a", "customer_b", "key_admin_a"),
        select=expect(anon=DENIED, customer_a=rows("customer_a"), key_admin_a=rows("key_admin_a")),
        inserts=expect(customer_a=rows("customer_a"), key_admin_a=rows("key_admin_a")),
        updates=expect(customer_a=rows("customer_a"), key_admin_a=rows("key_admin_a")),
        deletes=NOTHING,
    ),
    admin_managed(
        "public.webhooks",
        "url = url",
        "insert into public.webhooks (organization_id, url, events, secret)"
        " values (%(org)s, 'https://example.com/new', '{queue.called}', 's')",
        ADMINS_ONLY,
    ),
    read_only(
        "public.webhook_deliveries",
        "id",
        "attempts = attempts",
        "insert into public.webhook_deliveries (organization_id, webhook_id, event, payload)"
        " values (%(org)s, %(webhook)s, 'queue.called', '{}')",
        "A",
        ADMINS_ONLY,
    ),
    read_only(
        "public.queue_counters",
        "queue_id",
        "last_number = last_number",
        "insert into public.queue_counters (organization_id, queue_id, service_date, last_number)"
        " values (%(org)s, %(queue)s, current_date + 1, 1)",
        "A",
        members_of_a(rows("A"), rows("A", "B"), anon=DENIED),
    ),
    read_only(
        "public.audit_log",
        "organization_id",
        "operation = operation",
        "insert into public.audit_log (organization_id, table_name, operation)"
        " values (%(org)s, 'organizations', 'INSERT')",
        "A",
        admins_of_a(rows("A"), rows("A", "B", "C")) | {"anon": DENIED},
    ),
    read_only(
        "app.platform_admins",
        "user_id",
        "created_at = created_at",
        "insert into app.platform_admins (user_id) values (%(user)s)",
        "stranger",
        expect(anon=DENIED, super=rows("super")),
    ),
    read_only(
        "app.encryption_keys",
        "kid",
        "retired_at = retired_at",
        "insert into app.encryption_keys (kid, check_value) values (%(slug)s, 'v1|x|')",
        "A",
        expect(rows("key")),
    ),
    read_only(
        "public.appointment_slot_usage",
        "service_id",
        "places = places",
        "insert into public.appointment_slot_usage (organization_id, service_id, starts_at,"
        " ends_at, places) values (%(org)s, %(service)s, %(starts_at)s,"
        " %(starts_at)s + interval '30 minutes', 1)",
        "A",
    ),
    read_only(
        "public.availability_versions",
        "service_id",
        "version = version",
        "insert into public.availability_versions (organization_id, service_id, version)"
        " values (%(org)s, %(service)s, 1)",
        "A",
    ),
    read_only(
        "public.availability_days",
        "service_id",
        "version = version",
        "insert into public.availability_days (organization_id, service_id, day, version)"
        " values (%(org)s, %(service)s, current_date, 1)",
        "A",
    ),
    read_only(
        "public.analytics_daily_service",
        "service_id",
        "total = total",
        "insert into public.analytics_daily_service (organization_id, service_id, day, total)"
        " values (%(org)s, %(service)s, current_date, 1)",
        "A",
        members_of_a(rows("A"), rows("A", "B"), anon=DENIED),
    ),
    read_only(
        "public.analytics_daily_queue",
        "queue_id",
        "tickets = tickets",
        "insert into public.analytics_daily_queue (organization_id, queue_id, day, tickets)"
        " values (%(org)s, %(queue)s, current_date, 1)",
        "A",
        members_of_a(rows("A"), rows("A", "B"), anon=DENIED),
    ),
    read_only(
        "app.refresh_tokens",
        "user_id",
        "used_at = used_at",
        "insert into app.refresh_tokens (user_id, family_id, token_hash, expires_at)"
        " values (%(user)s, gen_random_uuid(), %(secret)s, now())",
        "customer_a",
    ),
    # Account tokens and second factors: reached only through the functions of 0017.
    read_only(
        "app.account_tokens",
        "id",
        "used_at = used_at",
        "insert into app.account_tokens (user_id, purpose, token_hash, expires_at)"
        " values (%(user)s, 'reset', %(secret)s, now())",
        "customer_a",
    ),
    read_only(
        "app.mfa_factors",
        "user_id",
        "secret = secret",
        "insert into app.mfa_factors (user_id, secret)"
        " values (%(user)s, convert_to(%(secret)s, 'UTF8'))",
        "customer_a",
    ),
    read_only(
        "app.mfa_recovery_codes",
        "id",
        "used_at = used_at",
        "insert into app.mfa_recovery_codes (user_id, code_hash) values (%(user)s, %(secret)s)",
        "customer_a",
    ),
    # procrastinate's tables: the worker's (service_role) alone; the API enqueues through
    # app.enqueue_job().
    read_only(
        "public.procrastinate_jobs",
        "id",
        "attempts = attempts",
        "insert into public.procrastinate_jobs (queue_name, task_name) values ('q', 't')",
        "A",
    ),
    read_only(
        "public.procrastinate_workers",
        "id",
        "last_heartbeat = last_heartbeat",
        "insert into public.procrastinate_workers default values",
        "A",
    ),
    read_only(
        "public.procrastinate_periodic_defers",
        "id",
        "defer_timestamp = defer_timestamp",
        "insert into public.procrastinate_periodic_defers (task_name) values ('t')",
        "A",
    ),
    read_only(
        "public.procrastinate_events",
        "id",
        "at = at",
        "insert into public.procrastinate_events (job_id, type) values (1, 'deferred')",
        "A",
    ),
    read_only(
        "auth.users",
        "id",
        "email = email",
        "insert into auth.users (email) values (%(slug)s || '@example.com')",
        "new",
    ),
)
BY_NAME = {table.name: table for table in TABLES}
table_param = pytest.mark.parametrize("table", TABLES, ids=[table.name for table in TABLES])


async def _allowed(conn: AsyncConn, statement: str, params: Any) -> bool:
    """Whether the statement got past privileges and policies; always undone."""
    try:
        async with conn.transaction(force_rollback=True):
            cursor = await conn.execute(statement, params)
            return cursor.rowcount > 0
    except psycopg.Error as exc:
        if exc.sqlstate == "42501":
            return False
        if exc.sqlstate in PAST_THE_POLICY:
            return True
        raise


async def test_every_table_is_covered(owner: Owner) -> None:
    tables = owner.execute(
        "select n.nspname || '.' || c.relname from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('public', 'app', 'auth') and c.relkind in ('r', 'p')"
        " and not c.relispartition and c.relname <> 'alembic_version'"
    ).fetchall()
    assert {name for (name,) in tables} == set(BY_NAME)


@table_param
async def test_select(table: Table, world: World, app_conninfo: str) -> None:
    seen: dict[str, Outcome] = {}
    for principal in PRINCIPALS:
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            try:
                cursor = await conn.execute(f"select {table.key} from {table.name}")
                seen[principal] = frozenset(
                    world.label(table.name, key) for (key,) in await cursor.fetchall()
                )
            except psycopg.errors.InsufficientPrivilege:
                seen[principal] = DENIED
    assert seen == table.select


@table_param
async def test_insert(table: Table, world: World, app_conninfo: str) -> None:
    inserted: dict[str, Outcome] = {}
    for principal in PRINCIPALS:
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            inserted[principal] = frozenset(
                [
                    target
                    for target in table.targets
                    if await _allowed(conn, table.insert, world.params(target))
                ]
            )
    assert inserted == table.inserts


@pytest.mark.parametrize("operation", ["update", "delete"])
@table_param
async def test_update_and_delete(
    table: Table, operation: str, world: World, app_conninfo: str
) -> None:
    statement = (
        f"update {table.name} set {table.touch} where {table.key}::text = %s"
        if operation == "update"
        else f"delete from {table.name} where {table.key}::text = %s"
    )
    changed: dict[str, Outcome] = {}
    for principal in PRINCIPALS:
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            changed[principal] = frozenset(
                [
                    label
                    for key, label in world.labels[table.name].items()
                    if await _allowed(conn, statement, (key,))
                ]
            )
    assert changed == (table.updates if operation == "update" else table.deletes)


async def test_only_admins_insert_urgent_notifications(world: World, app_conninfo: str) -> None:
    statement = (
        "insert into public.notifications (organization_id, user_id, channel, data)"
        " values (%(org)s, %(user)s, 'sms', '{\"urgent\": true}')"
    )
    allowed = set()
    for principal in PRINCIPALS:
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            if await _allowed(conn, statement, world.params("A:customer_a")):
                allowed.add(principal)
    assert allowed == {"admin_a", "key_admin_a", "super"}
