"""What holds whatever the policies say: the login role alone reads nothing, partitions are
not a side door, the audit trail is complete and append-only, organizations keep an admin."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import psycopg
import pytest

from slotease.migrations import runner
from tests.db.acting import ANONYMOUS, SERVICE, acting_as
from tests.db.test_policies import BY_NAME
from tests.db.world import World
from tests.factories import Owner

pytestmark = pytest.mark.anyio

# Tenant tables whose writes are audited. Notifications, analytics events and webhook
# deliveries are themselves records of what happened (and the busiest tables); idempotency
# keys and personal settings are not organization data.
AUDITED = (
    "organizations", "organization_members", "services", "service_working_hours",
    "service_closures", "appointments", "queues", "tickets", "feedback", "api_keys", "webhooks",
    "waitlist_entries",
)  # fmt: skip
# Where each audited write is aimed (see World.params); a ticket without a holder avoids the
# one-active-ticket rule for seeded customers.
AUDIT_TARGETS = {
    "organizations": "new",
    "appointments": "A:customer_a",
    "tickets": "A:-",
    # Feedback is accepted only from the appointment's own customer (migration 0003).
    "feedback": "A:customer_a",
    "waitlist_entries": "A:customer_a",
}


def _all_tables(owner: Owner, *, partitions_only: bool = False) -> list[str]:
    rows = owner.execute(
        "select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('public', 'app', 'auth') and c.relkind in ('r', 'p')"
        " and (c.relispartition or not %s) order by 1",
        (partitions_only,),
    ).fetchall()
    return [name for (name,) in rows]


async def test_the_login_role_alone_reads_nothing(owner: Owner, app_conninfo: str) -> None:
    readable = []
    async with await psycopg.AsyncConnection.connect(app_conninfo, autocommit=True) as conn:
        for table in _all_tables(owner):
            try:
                await conn.execute(f"select from {table} limit 1")
                readable.append(table)
            except psycopg.errors.InsufficientPrivilege:
                pass
    assert readable == []


async def test_partitions_are_no_way_around_the_parent(
    owner: Owner, world: World, app_conninfo: str
) -> None:
    partitions = _all_tables(owner, partitions_only=True)
    assert len(partitions) > 4
    readable = []
    for identity in (ANONYMOUS, world.identity("super"), world.identity("key_admin_a")):
        async with acting_as(app_conninfo, identity) as conn:
            for partition in partitions:
                try:
                    async with conn.transaction(force_rollback=True):
                        await conn.execute(f"select from {partition} limit 1")
                    readable.append((identity.role, partition))
                except psycopg.errors.InsufficientPrivilege:
                    pass
    assert readable == []


@pytest.mark.parametrize(
    "statement", ["update {} set actor_role = 'x'", "delete from {}", "truncate {}"]
)
async def test_audit_log_is_append_only_even_for_its_owner(owner: Owner, statement: str) -> None:
    # A row in the default partition too, so every partition holding rows is tried directly.
    owner.execute(
        "insert into public.audit_log (table_name, operation, at)"
        " values ('organizations', 'INSERT', '2100-01-01')"
    )
    partitions = [t for t in _all_tables(owner, partitions_only=True) if t.startswith("audit_log_")]
    count = "select count(*) from public.audit_log"
    before = owner.execute(count).fetchone()
    refused = "audit_log is append-only"
    outcomes = {}
    for table in ["public.audit_log", *partitions]:
        try:
            with owner.transaction(force_rollback=True):
                cursor = owner.execute(statement.format(table))
            changed = cursor.rowcount > 0 or statement.startswith("truncate")
            outcomes[table] = "changed" if changed else "no rows to change"
        except psycopg.errors.InsufficientPrivilege as exc:
            outcomes[table] = str(exc).splitlines()[0]
    assert outcomes["public.audit_log"] == refused
    assert {t: o for t, o in outcomes.items() if o not in (refused, "no rows to change")} == {}
    assert owner.execute(count).fetchone() == before


async def test_the_audited_tables_are_the_tenant_tables(owner: Owner) -> None:
    rows = owner.execute(
        "select distinct c.relname, t.tgqual is not null from pg_trigger t"
        " join pg_class c on c.oid = t.tgrelid"
        " where t.tgfoid = 'app.audit_row'::regproc and not c.relispartition"
    ).fetchall()
    assert {name for (name, conditional) in rows if not conditional} == set(AUDITED)
    # Of notifications, only the urgent ones people send are audited (migration 0010).
    assert {name for (name, conditional) in rows if conditional} == {"notifications"}


@pytest.mark.parametrize("table", AUDITED)
async def test_every_write_leaves_an_audit_row(owner: Owner, world: World, table: str) -> None:
    spec = BY_NAME[f"public.{table}"]
    actor = world.users["admin_a"].id
    with owner.transaction(force_rollback=True):
        owner.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(actor), "role": "authenticated"}),),
        )
        if table == "feedback":
            # One feedback per appointment, and every seeded appointment has one already.
            owner.execute("delete from public.feedback")
        (before,) = owner.execute(
            "select coalesce(max(id), 0) from public.audit_log"
        ).fetchone() or (0,)
        params = world.params(AUDIT_TARGETS.get(table, "A"))
        inserted = owner.execute(f"{spec.insert} returning {spec.key}::text", params).fetchone()
        assert inserted is not None
        owner.execute(
            f"update public.{table} set {spec.touch} where {spec.key}::text = %s", inserted
        )
        owner.execute(f"delete from public.{table} where {spec.key}::text = %s", inserted)
        trail = owner.execute(
            "select operation, actor_id, actor_role, row_id, old_row, new_row"
            " from public.audit_log where table_name = %s and id > %s order by id",
            (table, before),
        ).fetchall()
    assert [row[:3] for row in trail] == [
        ("INSERT", actor, "authenticated"),
        ("UPDATE", actor, "authenticated"),
        ("DELETE", actor, "authenticated"),
    ]
    row_id = trail[0][3]
    assert row_id is not None
    assert [(row[3], row[4] is not None, row[5] is not None) for row in trail] == [
        (row_id, False, True),
        (row_id, True, True),
        (row_id, True, False),
    ]

    def stable(row: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in row.items() if k != "updated_at"}

    assert stable(trail[2][4]) == stable(trail[0][5])


async def test_an_api_key_is_recorded_as_the_actor(world: World, app_conninfo: str) -> None:
    async with acting_as(app_conninfo, world.identity("key_admin_a")) as conn:
        cursor = await conn.execute("select max(id) from public.audit_log")
        before = await cursor.fetchone()
        await conn.execute(
            "update public.services set name = 'Renamed' where id = %s", (world.services["A"],)
        )
        cursor = await conn.execute(
            "select actor_id, actor_api_key_id, old_row ->> 'name', new_row ->> 'name'"
            " from public.audit_log where table_name = 'services' and id > %s",
            before,
        )
        assert await cursor.fetchall() == [
            (None, world.key_ids["key_admin_a"], "Service A", "Renamed")
        ]


async def test_the_creator_of_an_organization_becomes_its_admin(
    world: World, app_conninfo: str
) -> None:
    creator = world.users["stranger"].id
    async with acting_as(app_conninfo, world.identity("stranger")) as conn:
        cursor = await conn.execute(
            "insert into public.organizations (name, slug, kind, timezone)"
            " values ('Mine', %s, 'bank', 'UTC') returning id",
            (f"mine-{uuid.uuid4().hex[:8]}",),
        )
        created = await cursor.fetchone()
        assert created is not None
        cursor = await conn.execute(
            "select user_id, role from public.organization_members where organization_id = %s",
            created,
        )
        assert await cursor.fetchall() == [(creator, "admin")]
        cursor = await conn.execute(
            "update public.organizations set name = 'Mine, renamed' where id = %s", created
        )
        assert cursor.rowcount == 1


@pytest.mark.parametrize(
    "statement",
    [
        "delete from public.organization_members where user_id = %(admin)s",
        "update public.organization_members set role = 'staff' where user_id = %(admin)s",
    ],
    ids=["delete", "demote"],
)
@pytest.mark.parametrize("principal", ["admin_a", "super"])
async def test_the_last_admin_stays(
    world: World, app_conninfo: str, statement: str, principal: str
) -> None:
    params = {
        "admin": world.users["admin_a"].id,
        "org": world.orgs["A"],
        "other": world.users["stranger"].id,
    }
    async with acting_as(app_conninfo, world.identity(principal)) as conn:
        with pytest.raises(psycopg.Error, match="at least one admin") as raised:
            async with conn.transaction():
                await conn.execute(statement, params)
        assert raised.value.sqlstate == "SEADM"
        # With a second admin, the first may go.
        await conn.execute(
            "insert into public.organization_members (organization_id, user_id, role)"
            " values (%(org)s, %(other)s, 'admin')",
            params,
        )
        cursor = await conn.execute(statement, params)
        assert cursor.rowcount == 1


# What a route might forget, the database refuses: each statement as the caller would send it,
# then who may send it, and for which target (see World.params).
REFUSED_TO_CALLERS = {
    "customer_books_checked_in": (
        "customer_a",
        "insert into public.appointments"
        " (organization_id, service_id, customer_id, starts_at, ends_at, status) values"
        " (%(org)s, %(service)s, %(user)s, %(starts_at)s, %(starts_at)s + interval '30 minutes',"
        " 'checked_in')",
        "a customer may only book an appointment",
        ("staff_a", "A:customer_a"),
    ),
    "customer_jumps_the_line": (
        "customer_a",
        "insert into public.tickets"
        " (organization_id, queue_id, user_id, service_date, number, line_position_at)"
        " values (%(org)s, %(queue)s, %(user)s, current_date, %(number)s, now() - interval '1 day')",
        "only the organization may set a place in the line",
        # A ticket without a holder: customer_a already has an active one.
        ("staff_a", "A:-"),
    ),
    "admin_reinstates_their_organization": (
        "admin_a",
        "update public.organizations set is_active = not is_active where id = %(org)s",
        "only a platform admin may activate or suspend an organization",
        ("super", "A:admin_a"),
    ),
}


@pytest.mark.parametrize("case", REFUSED_TO_CALLERS)
async def test_the_database_refuses_what_a_route_might_let_through(
    world: World, app_conninfo: str, case: str
) -> None:
    principal, statement, refusal, _ = REFUSED_TO_CALLERS[case]
    async with acting_as(app_conninfo, world.identity(principal)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=refusal):
            await conn.execute(statement, world.params(f"A:{principal}"))


@pytest.mark.parametrize("case", REFUSED_TO_CALLERS)
async def test_what_is_refused_to_the_caller_is_allowed_to_those_in_charge(
    world: World, app_conninfo: str, case: str
) -> None:
    _, statement, _, (in_charge, target) = REFUSED_TO_CALLERS[case]
    async with acting_as(app_conninfo, world.identity(in_charge)) as conn:
        cursor = await conn.execute(statement, world.params(target))
    assert cursor.rowcount == 1


async def test_a_customer_still_books_and_takes_a_ticket(world: World, app_conninfo: str) -> None:
    # The stranger has no ticket yet, and books for the first time.
    params = world.params("A:stranger")
    async with acting_as(app_conninfo, world.identity("stranger")) as conn:
        cursor = await conn.execute(
            "insert into public.appointments"
            " (organization_id, service_id, customer_id, starts_at, ends_at) values"
            " (%(org)s, %(service)s, %(user)s, %(starts_at)s + interval '1 hour',"
            "  %(starts_at)s + interval '90 minutes') returning status",
            params,
        )
        assert await cursor.fetchall() == [("booked",)]
        cursor = await conn.execute(
            "insert into public.tickets (organization_id, queue_id, user_id, service_date, number)"
            " values (%(org)s, %(queue)s, %(user)s, current_date, %(number)s)"
            " returning line_position_at = now()",
            params,
        )
        assert await cursor.fetchall() == [(True,)]


async def test_partition_maintenance_moves_audit_rows_out_of_the_default(
    owner: Owner, worker_conninfo: str
) -> None:
    # Beyond the months made ahead, so the row waits in the default partition.
    stray_at = "2099-03-10T10:00:00Z"
    owner.execute(
        "insert into public.audit_log (table_name, operation, at)"
        " values ('organizations', 'INSERT', %s)",
        (stray_at,),
    )
    months_ahead = owner.execute(
        "select (extract(year from age(date_trunc('month', %s::timestamptz),"
        " date_trunc('month', now()))) * 12"
        " + extract(month from age(date_trunc('month', %s::timestamptz),"
        " date_trunc('month', now()))))::integer",
        (stray_at, stray_at),
    ).fetchone()
    assert months_ahead is not None
    async with acting_as(worker_conninfo, SERVICE) as conn:
        await conn.execute(
            "select app.ensure_monthly_partitions('public.audit_log', 0, %s)", months_ahead
        )
        cursor = await conn.execute(
            "select tableoid::regclass::text from public.audit_log where at = %s", (stray_at,)
        )
        assert await cursor.fetchall() == [("audit_log_p209903",)]
        # The move is no way around the rule: the log is still append-only afterwards.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await conn.execute("delete from public.audit_log where at = %s", (stray_at,))


async def test_the_upgrade_scrubs_secrets_already_in_the_audit_log(
    empty_database: Callable[[], str],
) -> None:
    database = empty_database()
    runner.upgrade(database, "0011")
    with psycopg.connect(database, autocommit=True) as conn:
        org = conn.execute(
            "insert into public.organizations (name, slug, kind, timezone)"
            " values ('Old', 'old', 'bank', 'UTC') returning id"
        ).fetchone()
        assert org is not None
        conn.execute(
            "insert into public.webhooks (organization_id, url, events, secret)"
            " values (%s, 'https://example.com/', '{ticket.called}', 'whsec_old')",
            org,
        )
        conn.execute("update public.webhooks set previous_secret = secret, secret = 'whsec_new'")
        conn.execute(
            "insert into public.api_keys (organization_id, name, role, prefix, key_hash)"
            " values (%s, 'Old', 'admin', 'sk_old', 'hash-of-old')",
            org,
        )
    runner.upgrade(database)
    with psycopg.connect(database) as conn:
        trail = conn.execute(
            "select table_name, old_row::text || new_row::text from public.audit_log"
            " where table_name in ('webhooks', 'api_keys') and old_row is not null"
            " union all select table_name, new_row::text from public.audit_log"
            " where table_name in ('webhooks', 'api_keys') and old_row is null"
        ).fetchall()
    assert sorted(table for table, _ in trail) == ["api_keys", "webhooks", "webhooks"]
    leaked = [
        s for s in ("whsec_old", "whsec_new", "hash-of-old") for _, text in trail if s in text
    ]
    assert leaked == []
    assert all("[redacted]" in text for _, text in trail)
