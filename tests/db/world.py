"""Two tenants (A and B), an inactive one (C), their people, API keys and at least one row in
every table, each row registered under a readable label so policy tests can say which rows a
caller sees or changes."""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg.abc import Params

from slotease.db.database import DbIdentity
from slotease.kit.secrets import hash_secret
from tests.db.acting import ANONYMOUS, as_api_key, as_user
from tests.factories import Owner, User, add_member, make_organization, make_service, make_user

USER_NAMES = (
    "stranger", "customer_a", "customer_b", "staff_a", "admin_a", "staff_b", "admin_b", "super",
)  # fmt: skip
# Who books where: customer_a only with A, customer_b with A and B.
CUSTOMER_ROWS = ("A:customer_a", "A:customer_b", "B:customer_b")
API_KEYS = {  # name: (organization, role, revoked, expires in)
    "key_staff_a": ("A", "staff", False, None),
    "key_admin_a": ("A", "admin", False, None),
    "key_revoked_a": ("A", "admin", True, None),
    "key_expired_a": ("A", "admin", False, timedelta(minutes=-1)),
    "key_admin_b": ("B", "admin", False, None),
}
# The callers every policy is checked against.
PRINCIPALS = (
    "anon", "stranger", "customer_a", "staff_a", "admin_a", "super",
    "key_staff_a", "key_admin_a", "key_revoked_a", "key_expired_a",
)  # fmt: skip


def next_month_at(hour: int) -> datetime:
    """A time in next month, which has a partition of its own."""
    today = datetime.now(UTC)
    first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first.replace(hour=hour, minute=0, second=0, microsecond=0)


@dataclass
class World:
    users: dict[str, User] = field(default_factory=dict)
    orgs: dict[str, uuid.UUID] = field(default_factory=dict)
    services: dict[str, uuid.UUID] = field(default_factory=dict)
    queues: dict[str, uuid.UUID] = field(default_factory=dict)
    webhooks: dict[str, uuid.UUID] = field(default_factory=dict)
    appointments: dict[str, tuple[uuid.UUID, datetime]] = field(default_factory=dict)
    key_secrets: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    # table -> the text of a row's key -> its label
    labels: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))

    def identity(self, principal: str) -> DbIdentity:
        if principal == "anon":
            return ANONYMOUS
        if principal in self.key_secrets:
            return as_api_key(self.key_secrets[principal])
        return as_user(self.users[principal].id)

    def label(self, table: str, key: object) -> str:
        return self.labels[table].get(str(key), f"unlabelled:{key}")

    def params(self, target: str) -> dict[str, Any]:
        """Values for an insert aimed at `target`: 'A' (organization A, on behalf of the
        stranger), 'A:customer_b' (organization A, for customer_b), 'A:-' (organization A, no
        user) or a bare principal name ('customer_a', 'key_admin_a')."""
        org, _, who = target.rpartition(":")
        if target in self.orgs:
            org, who = target, "stranger"
        params: dict[str, Any] = {
            "org": None, "service": None, "queue": None, "webhook": None, "appointment": None,
            "appointment_starts_at": None, "user": None, "principal": None,
            "slug": f"new-{uuid.uuid4().hex[:10]}", "secret": hash_secret(secrets.token_hex(8)),
            "number": secrets.randbelow(10**6) + 1, "starts_at": next_month_at(14),
        }  # fmt: skip
        if org:
            appointment = self.appointments.get(target) or next(
                a for label, a in self.appointments.items() if label.startswith(org + ":")
            )
            params |= {
                "org": self.orgs[org],
                "service": self.services[org],
                "queue": self.queues[org],
                "webhook": self.webhooks[org],
                "appointment": appointment[0],
                "appointment_starts_at": appointment[1],
            }
        if who in self.users:
            params["user"] = self.users[who].id
            params["principal"] = str(self.users[who].id)
        elif who in self.key_ids:
            params["principal"] = f"key:{self.key_ids[who]}"
        return params


def _insert(owner: Owner, sql: str, params: Params) -> str:
    row = owner.execute(sql, params).fetchone()
    assert row is not None
    return str(row[0])


def seed(owner: Owner) -> World:
    world = World()
    labels = world.labels
    for name in USER_NAMES:
        world.users[name] = make_user(owner, name=name, super_admin=name == "super")
        labels["auth.users"][str(world.users[name].id)] = name
        labels["public.user_profiles"][str(world.users[name].id)] = name
    labels["app.platform_admins"][str(world.users["super"].id)] = "super"
    # A key check value (migration 0019); no secret, so every role reads it.
    kid = _insert(
        owner,
        "insert into app.encryption_keys (kid, check_value) values ('world', 'v1|world|')"
        " returning kid",
        {},
    )
    labels["app.encryption_keys"][kid] = "key"

    for org in ("A", "B", "C"):
        world.orgs[org] = make_organization(owner, name=f"Organization {org}")
        labels["public.organizations"][str(world.orgs[org])] = org
        labels["public.audit_log"][str(world.orgs[org])] = org
    owner.execute(
        "update public.organizations set is_active = false where id = %s", (world.orgs["C"],)
    )

    for org in ("A", "B"):
        org_id = world.orgs[org]
        for role in ("staff", "admin"):
            user = world.users[f"{role}_{org.lower()}"]
            add_member(owner, org_id, user, role)
            labels["public.organization_members"][f"{org_id}:{user.id}"] = (
                f"{org}:{role}_{org.lower()}"
            )
        for suffix, active in (("", True), ("-off", False)):
            service = make_service(owner, org_id, name=f"Service {org}{suffix}")
            world.services[org + suffix] = service
            owner.execute(
                "update public.services set is_active = %s where id = %s", (active, service)
            )
            labels["public.services"][str(service)] = org + suffix
            for (hours_id,) in owner.execute(
                "select id from public.service_working_hours where service_id = %s", (service,)
            ):
                labels["public.service_working_hours"][str(hours_id)] = org + suffix
            queue = _insert(
                owner,
                "insert into public.queues (organization_id, service_id, name, prefix, is_active)"
                " values (%(org)s, %(service)s, 'Desk', 'Q', %(active)s) returning id",
                {"org": org_id, "service": service, "active": active},
            )
            world.queues[org + suffix] = uuid.UUID(queue)
            labels["public.queues"][queue] = org + suffix
        closure = _insert(
            owner,
            "insert into public.service_closures (organization_id, service_id, starts_at, ends_at)"
            " values (%s, %s, now() + interval '40 days', now() + interval '41 days') returning id",
            (org_id, world.services[org]),
        )
        labels["public.service_closures"][closure] = org
        webhook = _insert(
            owner,
            "insert into public.webhooks (organization_id, url, events, secret)"
            " values (%s, 'https://example.com/hook', '{appointment.created}', 's') returning id",
            (org_id,),
        )
        world.webhooks[org] = uuid.UUID(webhook)
        labels["public.webhooks"][webhook] = org
        delivery = _insert(
            owner,
            "insert into public.webhook_deliveries (organization_id, webhook_id, event, payload)"
            " values (%s, %s, 'appointment.created', '{}') returning id",
            (org_id, webhook),
        )
        labels["public.webhook_deliveries"][delivery] = org
        counter = _insert(
            owner,
            "insert into public.queue_counters (organization_id, queue_id, service_date,"
            " last_number) values (%s, %s, current_date, 1) returning queue_id",
            (org_id, world.queues[org]),
        )
        labels["public.queue_counters"][counter] = org

    for org, invitee in (("A", world.users["customer_a"].email), ("B", "someone@example.com")):
        invitation = _insert(
            owner,
            "insert into public.invitations (organization_id, email, role, token_hash)"
            " values (%s, %s, 'staff', %s) returning id",
            (world.orgs[org], invitee, secrets.token_hex(16)),
        )
        labels["public.invitations"][invitation] = org

    for name, (org, role, revoked, expires_in) in API_KEYS.items():
        world.key_secrets[name] = f"sk_{secrets.token_urlsafe(24)}"
        key_id = _insert(
            owner,
            "insert into public.api_keys"
            " (organization_id, name, role, prefix, key_hash, revoked_at, expires_at)"
            " values (%s, %s, %s, 'sk_', %s, %s, %s) returning id",
            (
                world.orgs[org], name, role, hash_secret(world.key_secrets[name]),
                datetime.now(UTC) if revoked else None,
                datetime.now(UTC) + expires_in if expires_in else None,
            ),
        )  # fmt: skip
        world.key_ids[name] = uuid.UUID(key_id)
        labels["public.api_keys"][key_id] = org

    for hour, label in enumerate(CUSTOMER_ROWS, start=9):
        org, customer = label.split(":")
        org_id, customer_id = world.orgs[org], world.users[customer].id
        starts_at = next_month_at(hour)
        appointment = _insert(
            owner,
            "insert into public.appointments"
            " (organization_id, service_id, customer_id, starts_at, ends_at)"
            " values (%s, %s, %s, %s, %s) returning id",
            (
                org_id,
                world.services[org],
                customer_id,
                starts_at,
                starts_at + timedelta(minutes=30),
            ),
        )
        # Completed, so that feedback on it is allowed by the feedback rules of migration 0003.
        for status in ("checked_in", "in_service", "completed"):
            owner.execute(
                "update public.appointments set status = %s where id = %s", (status, appointment)
            )
        world.appointments[label] = (uuid.UUID(appointment), starts_at)
        labels["public.appointments"][appointment] = label
        rows = {
            "public.tickets": (
                "insert into public.tickets (organization_id, queue_id, user_id, service_date, number)"
                " values (%s, %s, %s, %s, %s) returning id",
                (org_id, world.queues[org], customer_id, date.today(), hour),
            ),
            "public.feedback": (
                "insert into public.feedback (organization_id, appointment_id,"
                " appointment_starts_at, service_id, customer_id, rating)"
                " values (%s, %s, %s, %s, %s, 5) returning id",
                (org_id, appointment, starts_at, world.services[org], customer_id),
            ),
            "public.notifications": (
                "insert into public.notifications (organization_id, user_id, channel, body)"
                " values (%s, %s, 'in_app', 'hello') returning id",
                (org_id, customer_id),
            ),
            "public.analytics_events": (
                "insert into public.analytics_events (organization_id, user_id, event_type)"
                " values (%s, %s, 'page.view') returning id",
                (org_id, customer_id),
            ),
            "public.waitlist_entries": (
                "insert into public.waitlist_entries (service_id, user_id, starts_at)"
                " values (%s, %s, %s) returning id",
                (world.services[org], customer_id, starts_at),
            ),
        }
        for table, (sql, params) in rows.items():
            labels[table][_insert(owner, sql, params)] = label

    for org in ("A", "B"):
        event = _insert(
            owner,
            "insert into public.analytics_events (organization_id, event_type)"
            " values (%s, 'kiosk.view') returning id",
            (world.orgs[org],),
        )
        labels["public.analytics_events"][event] = f"{org}:-"

    # The events the domain triggers of migration 0007 recorded while seeding, by the owner
    # (no actor): each is its organization's, like the kiosk events.
    for event_id, org_id in owner.execute(
        "select id, organization_id from public.analytics_events where user_id is null"
    ).fetchall():
        org = next(name for name, value in world.orgs.items() if value == org_id)
        labels["public.analytics_events"].setdefault(str(event_id), f"{org}:-")
    # The daily rollups the triggers of migration 0014 kept while seeding.
    for table, key in (
        ("public.analytics_daily_service", "service_id"),
        ("public.analytics_daily_queue", "queue_id"),
    ):
        for key_value, org_id in owner.execute(f"select {key}, organization_id from {table}"):
            org = next(name for name, value in world.orgs.items() if value == org_id)
            labels[table][str(key_value)] = org
    for org in ("A", "B"):
        report = _insert(
            owner,
            "insert into public.analytics_reports (organization_id, kind, format, from_date,"
            " to_date) values (%s, 'appointments', 'csv', current_date, current_date) returning id",
            (world.orgs[org],),
        )
        labels["public.analytics_reports"][report] = org

    for customer in ("customer_a", "customer_b"):
        user_id = world.users[customer].id
        owner.execute(
            "insert into public.notification_preferences (user_id) values (%s)", (user_id,)
        )
        labels["public.notification_preferences"][str(user_id)] = customer
        owner.execute(
            "insert into app.refresh_tokens (user_id, family_id, token_hash, expires_at)"
            " values (%s, gen_random_uuid(), %s, now() + interval '1 day')",
            (user_id, secrets.token_hex(16)),
        )
        labels["app.refresh_tokens"][str(user_id)] = customer
        owner.execute(
            "insert into public.calendar_feed_tokens (user_id, token_hash) values (%s, %s)",
            (user_id, secrets.token_hex(16)),
        )
        labels["public.calendar_feed_tokens"][str(user_id)] = customer
        consent = _insert(
            owner,
            "insert into public.consent_events (user_id, purpose, granted, source)"
            " values (%s, 'marketing', true, 'web') returning id",
            (user_id,),
        )
        labels["public.consent_events"][consent] = customer
    for principal, name in (
        (str(world.users["customer_a"].id), "customer_a"),
        (str(world.users["customer_b"].id), "customer_b"),
        (f"key:{world.key_ids['key_admin_a']}", "key_admin_a"),
    ):
        owner.execute(
            "insert into public.idempotency_keys"
            " (principal, idempotency_key, request_method, request_path, request_hash)"
            " values (%s, 'k1', 'POST', '/v1/appointments', 'h')",
            (principal,),
        )
        labels["public.idempotency_keys"][f"{principal}/k1"] = name
    return world
