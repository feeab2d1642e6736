"""Least privilege in the database: the API's login role can become only anon and
authenticated, the worker's alone may become service_role, and every SECURITY DEFINER function
the API roles may execute checks its caller."""

from __future__ import annotations

import json
from datetime import date, datetime
from uuid import uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from slotease.kit.secrets import hash_secret
from tests.db.acting import ANONYMOUS, SERVICE, acting_as, as_user
from tests.db.world import World
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio

# The SECURITY DEFINER functions anon or authenticated may execute, and why each is safe.
CALLER_CHECKED = {
    # The policy helpers: they answer questions about the caller only.
    "api_key_grant": "the key whose hash the caller presented",
    "member_org_ids": "the caller's organizations",
    "admin_org_ids": "the caller's organizations",
    "is_super_admin": "the caller",
    "is_org_member": "the caller",
    "is_org_admin": "the caller",
    "principal_id": "the caller",
    "can_see_profile": "whether the caller shares an organization with the profile",
    # Public facts and counts: what the directory, the slot engine and the queue screens show.
    "directory_candidates": "active organizations matching a search",
    "busy_intervals": "times without names",
    "service_rating_stats": "aggregates",
    "places_taken": "a count",
    "waitlist_ahead": "a count",
    "queue_public_state": "the public screen of a queue",
    "queue_line": "positions without names",
    "ticket_positions": "positions without names",
    "ticket_at_position": "a ticket id without its holder",
    "queue_summary": "the public screen of a queue",
    "webhook_subscribed": "a yes or no",
    "metrics_counts": "counts",
    # Acting for the caller, who is checked inside.
    "my_email": "the caller",
    "deals_with": "people the caller's own organization deals with",
    "accept_invitation": "the invitation addressed to the caller",
    "rotate_webhook_secret": "admins of the organization",
    "availability_version": "a version number",
    "availability_days": "version numbers",
    "next_ticket_number": "the caller's own ticket",
    "check_in_appointment": "the appointment's customer or staff",
    "accept_waitlist_offer": "the offer's own waiter",
    "analytics_service_performance": "admins of the organization",
    "analytics_organization_stats": "admins of the organization",
    "analytics_user_activity": "admins of the organization",
    "enqueue_job": "request-path tasks about the caller's organizations",
    "drop_reminders": "the appointment's customer or staff",
    "in_app_to_deliver": "in-app rows the caller's own transaction inserted",
    "record_in_app": "in-app rows the caller's own transaction inserted",
    "record_webhook_deliveries": "callers with business with the organization",
    "reopen_webhook_delivery": "admins of the organization",
    "close_my_account": "the caller's own sessions and password",
    "personal_records_of": "the caller's own records (the operator names anyone)",
    # Time-based rules any reader of the rows may apply: they do what the clock already says.
    "expire_called_tickets": "one queue, names for its staff only",
    "expire_waitlist_offers": "offers past their end",
    # Pre-identity steps: each answers one question about the credential presented.
    "calendar_feed_owner": "the owner of the presented feed token",
    "sign_in_candidate": "the account of one address, for the password check",
    "sign_up": "a new account",
    "spend_refresh_token": "the presented token",
    "session_user_of": "the presented token",
    "revoke_refresh_family": "the presented token's family",
    "record_sign_in": "the caller's own account",
    "issue_refresh_token": "the caller's own session",
    "record_sign_in_refusal": "an audit event for the account of one address",
    "request_password_reset": "a reset token for the account of one address, answered by id",
    "reset_password": "the account of the presented reset token",
    "verify_email": "the account of the presented verification token",
    "mfa_challenge_user": "the account of the presented MFA step token",
    # The caller's own account: password, verification, sessions and second factor.
    "session_is_live": "the caller's own session",
    "my_account": "the caller",
    "my_password_hash": "the caller",
    "change_password": "the caller's own account",
    "issue_verification": "the caller's own account",
    "begin_mfa_enrollment": "the caller's own factor",
    "my_mfa_factor": "the caller's own factor",
    "use_totp_step": "the caller's own factor",
    "use_recovery_code": "the caller's own recovery codes",
    "confirm_mfa": "the caller's own factor",
    "disable_mfa": "the caller's own factor",
    "issue_mfa_challenge": "the caller's own sign-in step",
    "settle_mfa_challenge": "the caller's own sign-in step",
    "mfa_blocked_org_ids": "the caller's organizations",
}

# Tables a caller without claims must not read a row of, even as a role it can become.
PRIVATE_TABLES = (
    "auth.users", "app.refresh_tokens", "app.platform_admins", "public.user_profiles",
    "app.account_tokens", "app.mfa_factors", "app.mfa_recovery_codes",
    "public.organization_members", "public.appointments", "public.tickets", "public.feedback",
    "public.notifications", "public.notification_preferences", "public.api_keys",
    "public.webhooks", "public.webhook_deliveries", "public.audit_log",
    "public.waitlist_entries", "public.analytics_reports", "public.procrastinate_jobs",
)  # fmt: skip


def _executable_definers(owner: Owner) -> set[str]:
    rows = owner.execute(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where p.prosecdef and p.prorettype <> 'trigger'::regtype"
        " and (has_function_privilege('anon', p.oid, 'execute')"
        "      or has_function_privilege('authenticated', p.oid, 'execute'))"
    ).fetchall()
    return {name for (name,) in rows}


async def test_every_definer_the_api_roles_may_run_checks_its_caller(owner: Owner) -> None:
    executable = _executable_definers(owner)
    assert executable - CALLER_CHECKED.keys() == set()
    # The list is kept current: each entry still exists and is still executable.
    assert CALLER_CHECKED.keys() - executable == set()


async def test_the_api_login_role_can_become_only_anon_and_authenticated(
    app_conninfo: str, worker_conninfo: str
) -> None:
    async with await psycopg.AsyncConnection.connect(app_conninfo, autocommit=True) as conn:
        for role in ("anon", "authenticated"):
            await conn.execute(f"set role {role}")
        for role in ("service_role", "slotease_worker", "postgres"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(f"set role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("select set_config('role', 'service_role', false)")
    async with await psycopg.AsyncConnection.connect(worker_conninfo, autocommit=True) as conn:
        await conn.execute("set role service_role")
        row = await (await conn.execute("select current_user")).fetchone()
        assert row == ("service_role",)


async def test_an_injected_statement_reads_no_tenant_rows(world: World, app_conninfo: str) -> None:
    """What a statement run as the API's login role can reach without a caller's claims: no
    escalation, and no row of any private table."""
    seen: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(app_conninfo, autocommit=True) as conn:
        for role in ("anon", "authenticated", "service_role", "slotease_worker"):
            try:
                await conn.execute(f"set role {role}")
            except psycopg.errors.InsufficientPrivilege:
                continue
            for table in PRIVATE_TABLES:
                try:
                    cursor = await conn.execute(f"select count(*) from {table}")
                except psycopg.errors.InsufficientPrivilege:
                    continue
                row = await cursor.fetchone()
                assert row is not None
                if row[0]:
                    seen[f"{role}:{table}"] = row[0]
    assert seen == {}


async def test_an_api_role_enqueues_only_request_tasks_about_its_own_business(
    world: World, app_conninfo: str
) -> None:
    appointment, _ = world.appointments["A:customer_a"]
    notify = Jsonb({"event": "appointment.created", "subject_id": str(appointment)})
    refused = [
        (ANONYMOUS, "ops.maintain_partitions", Jsonb({"timestamp": 0})),
        (world.identity("customer_a"), "jobs.remove_old", Jsonb({"timestamp": 0})),
        (world.identity("stranger"), "notifications.notify_event", notify),
        (world.identity("admin_b"), "notifications.notify_event", notify),
        (
            world.identity("stranger"),
            "notifications.notify_event",
            Jsonb({"event": "appointment.created", "subject_id": "x"}),
        ),
    ]
    for identity, task, args in refused:
        async with acting_as(app_conninfo, identity) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute("select app.enqueue_job('default', %s, %s)", (task, args))
    for principal in ("customer_a", "staff_a", "key_admin_a"):
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            cursor = await conn.execute(
                "select app.enqueue_job('notifications', 'notifications.notify_event', %s)",
                (notify,),
            )
            row = await cursor.fetchone()
            assert row is not None
            assert row[0] > 0


async def test_reminders_move_only_for_the_appointments_customer_or_staff(
    world: World, app_conninfo: str
) -> None:
    appointment, _ = world.appointments["A:customer_a"]
    for principal in ("anon", "stranger", "admin_b", "customer_b"):
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute("select app.drop_reminders(%s)", (appointment,))
    for principal in ("customer_a", "staff_a"):
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            await conn.execute("select app.drop_reminders(%s)", (appointment,))


async def test_the_grace_sweep_of_a_request_covers_one_queue_and_hides_names(
    owner: Owner, world: World, app_conninfo: str, worker_conninfo: str
) -> None:
    walk_in = make_user(owner, name="Walk-in")
    customer = walk_in.id
    owner.execute(
        "insert into public.tickets (organization_id, queue_id, user_id, service_date, number)"
        " values (%s, %s, %s, %s, 900)",
        (world.orgs["A"], world.queues["A"], customer, date.today()),
    )
    owner.execute("update public.tickets set status = 'called' where number = 900")
    owner.execute(
        "update public.tickets set called_at = now() - interval '1 hour' where number = 900"
    )
    try:
        # Reading a queue writes nothing, so an anonymous caller sweeps no queue at all; a
        # signed-in one (staff calling next) sweeps one queue and no other.
        async with acting_as(app_conninfo, ANONYMOUS) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(
                    "select * from app.expire_called_tickets(%s)", (world.queues["A"],)
                )
        async with acting_as(app_conninfo, world.identity("stranger")) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute("select * from app.expire_called_tickets(null)")
        swept = {}
        for principal in ("stranger", "staff_a"):
            async with acting_as(app_conninfo, world.identity(principal)) as conn:
                cursor = await conn.execute(
                    "select user_id from app.expire_called_tickets(%s) where number = 900",
                    (world.queues["A"],),
                )
                swept[principal] = await cursor.fetchall()
        assert swept == {
            "stranger": [(None,)],
            "staff_a": [(customer,)],
        }
        async with acting_as(worker_conninfo, SERVICE) as conn:
            cursor = await conn.execute(
                "select user_id from app.expire_called_tickets() where number = 900"
            )
            assert await cursor.fetchall() == [(customer,)]
        async with acting_as(app_conninfo, as_user(customer)) as conn:
            cursor = await conn.execute(
                "select user_id from app.expire_called_tickets(%s) where number = 900",
                (world.queues["A"],),
            )
            assert await cursor.fetchall() == [(customer,)]
    finally:
        owner.execute("delete from public.tickets where number = 900")


async def test_a_session_is_issued_only_to_the_user_the_transaction_acts_as(
    world: World, app_conninfo: str
) -> None:
    family = uuid4()
    async with acting_as(app_conninfo, ANONYMOUS) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("select app.issue_refresh_token(%s, 'x', 1)", (family,))
    async with acting_as(app_conninfo, world.identity("customer_a")) as conn:
        await conn.execute(
            "select app.issue_refresh_token(%s, %s, 1)", (family, hash_secret("rt_a"))
        )
        # The family is customer_a's now: nobody else gets a token in it.
        await conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(world.users["customer_b"].id), "role": "authenticated"}),),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(
                "select app.issue_refresh_token(%s, %s, 1)", (family, hash_secret("rt_b"))
            )


async def test_sign_in_lookup_answers_for_one_address_only(world: World, app_conninfo: str) -> None:
    email = world.users["customer_a"].email
    async with acting_as(app_conninfo, ANONYMOUS) as conn:
        cursor = await conn.execute("select id from app.sign_in_candidate(%s)", (email.upper(),))
        assert await cursor.fetchall() == [(world.users["customer_a"].id,)]
        cursor = await conn.execute("select id from app.sign_in_candidate('%')")
        assert await cursor.fetchall() == []


async def test_webhook_events_are_recorded_only_by_those_with_business_there(
    world: World, app_conninfo: str
) -> None:
    payload = Jsonb({"id": str(uuid4()), "at": datetime.now().isoformat()})
    for principal in ("anon", "stranger", "admin_b"):
        async with acting_as(app_conninfo, world.identity(principal)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(
                    "select app.record_webhook_deliveries(%s, 'appointment.created', %s)",
                    (world.orgs["A"], payload),
                )
    async with acting_as(app_conninfo, world.identity("customer_a")) as conn:
        cursor = await conn.execute(
            "select app.record_webhook_deliveries(%s, 'appointment.created', %s)",
            (world.orgs["A"], payload),
        )
        assert len(await cursor.fetchall()) == 1
