"""A person present in every table that can hold them, and the catalog scan that looks for
them afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from psycopg import sql

from slotease.keys.repository import SEALED_COLUMNS
from slotease.kit import crypto
from tests.appointments.arrange import Clinic, book, make_clinic, soon
from tests.auth.support import PASSWORD, sign_up
from tests.factories import Owner, User, add_member, make_organization, make_user, seal, unseal


@dataclass(frozen=True)
class Person:
    user: User
    refresh_token: str
    full_name: str
    phone: str
    notes: str
    comment: str
    push_token: str
    clinic: Clinic
    upcoming_id: uuid.UUID
    ticket_id: uuid.UUID

    @property
    def markers(self) -> dict[str, str]:
        return {
            "email": self.user.email,
            "name": self.full_name,
            "phone": self.phone,
            "notes": self.notes,
            "comment": self.comment,
            "push token": self.push_token,
        }


def _one(owner: Owner, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = owner.execute(query, params).fetchone()
    assert row is not None
    return row[0]


async def seed_person(client: httpx.AsyncClient, owner: Owner) -> Person:
    tag = uuid.uuid4().hex[:8]
    full_name = f"Zebulon Quillfeather {tag}"
    phone = f"+44 7700 {int(tag, 16) % 1_000_000:06d}"
    session = await sign_up(client, full_name=full_name, phone=phone)
    email = session["user"]["email"]
    user = User(id=uuid.UUID(session["user"]["id"]), email=email, token=session["access_token"])
    clinic = make_clinic(owner)
    # Webhooks copy every appointment event, notes included.
    webhook_id = uuid.uuid4()
    owner.execute(
        "insert into public.webhooks (id, organization_id, url, events, secret)"
        " values (%s, %s, 'https://hooks.invalid/in', %s, %s)",
        (webhook_id, clinic.org_id, ["appointment.created", "appointment.cancelled"],
         seal(crypto.WEBHOOK_SECRET, webhook_id, "whsec_test")),
    )  # fmt: skip
    notes = f"Allergic to penicillin, knee surgery {tag}"
    response = await book(client, user, clinic, clinic.at(soon(clinic), "10:00"), notes=notes)
    assert response.status_code == 201, response.text
    upcoming_id = uuid.UUID(response.json()["id"])
    # Staff booking for them with an idempotency key: the stored answer names them.
    response = await client.post(
        "/v1/appointments",
        json={"service_id": str(clinic.service_id), "customer_id": str(user.id),
              "starts_at": clinic.at(soon(clinic, 6), "11:00").isoformat(), "notes": notes},
        headers={**clinic.staff.headers, "Idempotency-Key": f"key-{tag}"},
    )  # fmt: skip
    assert response.status_code == 201, response.text

    # A past visit they rated, with a comment.
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    visit_id = uuid.uuid4()
    owner.execute(
        "insert into public.appointments (id, organization_id, service_id, customer_id,"
        " starts_at, ends_at, notes) values (%s, %s, %s, %s, %s, %s, %s)",
        (visit_id, clinic.org_id, clinic.service_id, user.id, past,
         past + timedelta(minutes=30), seal(crypto.NOTES, visit_id, notes)),
    )  # fmt: skip
    for step in ("checked_in", "in_service", "completed"):
        owner.execute("update public.appointments set status = %s where id = %s", (step, visit_id))
    comment = f"Doctor Who was lovely, my back hurts {tag}"
    response = await client.post(
        f"/v1/appointments/{visit_id}/feedback",
        json={"rating": 4, "comment": comment},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    # A report quoting the comment and the name.
    owner.execute(
        "insert into public.analytics_reports (organization_id, kind, format, from_date, to_date,"
        " status, content, content_type, finished_at)"
        " values (%s, 'feedback', 'csv', current_date - 7, current_date, 'ready', %s,"
        " 'text/csv', now())",
        (clinic.org_id, f"name,comment\n{full_name},{comment}\n".encode()),
    )

    queue_id = _one(
        owner,
        "insert into public.queues (organization_id, name, prefix) values (%s, 'Desk', 'A')"
        " returning id",
        (clinic.org_id,),
    )
    response = await client.post(f"/v1/queues/{queue_id}/tickets", json={}, headers=user.headers)
    assert response.status_code == 201, response.text
    ticket_id = uuid.UUID(response.json()["id"])
    owner.execute(
        "insert into public.waitlist_entries (service_id, user_id, starts_at) values (%s, %s, %s)",
        (clinic.service_id, user.id, clinic.at(soon(clinic), "10:00")),
    )

    # An urgent message from an admin (audited), addressed by name.
    response = await client.post(
        "/v1/notifications/send",
        json={"user_id": str(user.id), "channels": ["in_app", "email"], "urgent": True,
              "subject": f"For {full_name}", "body": f"Dear {full_name}, call {phone}"},
        headers=clinic.admin.headers,
    )  # fmt: skip
    assert response.status_code == 202, response.text
    response = await client.post(
        "/v1/analytics/event",
        json={"event_type": "page.view", "properties": {"typed": full_name}},
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    response = await client.put(
        "/v1/me/consents", json={"marketing": True, "sms": False}, headers=user.headers
    )
    assert response.status_code == 200, response.text

    push_token = f"fcm-device-{tag}"
    owner.execute(
        "insert into public.notification_preferences (user_id, push_token) values (%s, %s)",
        (user.id, seal(crypto.PUSH_TOKEN, user.id, push_token)),
    )
    owner.execute(
        "insert into public.calendar_feed_tokens (user_id, token_hash) values (%s, %s)",
        (user.id, f"hash-{tag}"),
    )
    elsewhere = make_organization(owner, make_user(owner))
    add_member(owner, elsewhere, user, "staff")
    owner.execute(
        "insert into public.invitations (organization_id, email, role, token_hash)"
        " values (%s, %s, 'admin', %s)",
        (elsewhere, email, f"invite-{tag}"),
    )
    return Person(
        user=user, refresh_token=session["refresh_token"], full_name=full_name, phone=phone,
        notes=notes, comment=comment, push_token=push_token, clinic=clinic,
        upcoming_id=upcoming_id, ticket_id=ticket_id,
    )  # fmt: skip


# Every column whose values could spell a marker, in every table (partitions one by one) and
# materialized view of every schema but the system's.
_TEXT_COLUMNS = """
select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.relkind in ('r', 'm')
  and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
  and (a.atttypid in ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'json'::regtype,
                      'jsonb'::regtype, 'bytea'::regtype, 'name'::regtype, 'tsvector'::regtype)
       or a.atttypid in (select t.oid from pg_type t
                         where t.typcategory = 'A'
                           and t.typelem in ('text'::regtype, 'varchar'::regtype)))
order by 1, 2, 3
"""


def columns_scanned(owner: Owner) -> list[tuple[str, str, str, str]]:
    return [tuple(row) for row in owner.execute(_TEXT_COLUMNS).fetchall()]


def sealed_plaintexts(owner: Owner) -> Iterator[tuple[str, str]]:
    """(`schema.table.column`, plaintext) of every value sealed by kit.crypto, opened with the
    test keyring: ciphertext would hide a marker from the text scan, so the sealed columns are
    also read the way the application reads them."""
    for column in SEALED_COLUMNS:
        query = sql.SQL("select {}, {} from {}.{} where {} is not null").format(
            column.row_id_value,
            column.value,
            sql.Identifier(column.schema),
            sql.Identifier(column.table),
            column.value,
        )
        for row_id, blob in owner.execute(query).fetchall():
            place = f"{column.schema}.{column.table}.{column.column}"
            yield place, unseal(column.field, row_id, bytes(blob))


def find_markers(owner: Owner, markers: dict[str, str]) -> list[str]:
    """`schema.table.column: marker` for every column holding one of `markers`
    (case-insensitive; bytea read as text, sealed values opened)."""
    found: list[str] = []
    for place, plaintext in sealed_plaintexts(owner):
        found += [
            f"{place}: {name}" for name, v in markers.items() if v.lower() in plaintext.lower()
        ]
    patterns = [f"%{value.lower()}%" for value in markers.values()]
    for schema, table, column, type_name in columns_scanned(owner):
        as_text = (
            sql.SQL("lower(encode({}, 'escape'))")
            if type_name == "bytea"
            else sql.SQL("lower({}::text)")
        ).format(sql.Identifier(column))
        query = sql.SQL(
            "select p from unnest(%s::text[]) p where exists ( select 1 from {}.{} where {} like p)"
        ).format(sql.Identifier(schema), sql.Identifier(table), as_text)
        for (pattern,) in owner.execute(query, (patterns,)).fetchall():
            name = next(k for k, v in markers.items() if f"%{v.lower()}%" == pattern)
            found.append(f"{schema}.{table}.{column}: {name}")
    return found


def erase_request(password: str = PASSWORD) -> dict[str, Any]:
    return {"password": password}
