"""The rules of the personal-data rights: what an export holds, how an erasure proceeds,
consents and their history, and the audit trail as an organization's admins read it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from slotease.appointments import service as appointments
from slotease.auth import service as auth
from slotease.auth.principal import Principal
from slotease.config import Settings
from slotease.context import AppContext
from slotease.db.database import SERVICE, Connection, Database
from slotease.jobs import repository as jobs_repo
from slotease.jobs.queues import MAINTENANCE
from slotease.kit.events import EventBus, service_transaction
from slotease.kit.pagination import Page, decode_cursor, page_of
from slotease.kit.problems import Conflict, NotFound
from slotease.organizations.access import require_admin
from slotease.privacy import repository as repo
from slotease.privacy.consents import DEFAULTS, PURPOSES
from slotease.privacy.schemas import (
    AuditEntry,
    Consent,
    ConsentEvent,
    Consents,
    ConsentsUpdate,
    ErasureAccepted,
    ErasureRequest,
)
from slotease.queues import service as queues
from slotease.waitlist import service as waitlist

ERASE_TASK = "gdpr.erase"


# ----- erasure --------------------------------------------------------------------------
async def _refuse_sole_admin(conn: Connection, user_id: UUID) -> None:
    """An organization never loses its last admin: the person hands it over first."""
    sole = await repo.organizations_only_they_administer(conn, user_id)
    if sole:
        listed = ", ".join(str(org) for org in sole)
        raise Conflict(
            f"You are the only admin of organization(s) {listed}: make someone else an admin first."
        )


async def give_up_bookings(conn: Connection, principal: Principal) -> None:
    """Upcoming appointments and live tickets are cancelled, waitlist places left, each the
    way its holder would do it: places free up, waiters get offers, subscribers hear of it."""
    assert principal.user_id is not None
    # Waitlist places first: a place their own cancellation frees must not be offered to them.
    for entry_id in await repo.live_waitlist_entries(conn, principal.user_id):
        await waitlist.leave(conn, principal, entry_id)
    for appointment_id in await repo.upcoming_appointments(conn, principal.user_id):
        await appointments.cancel_appointment(conn, appointment_id)
    for ticket_id in await repo.active_tickets(conn, principal.user_id):
        await queues.cancel_ticket(conn, ticket_id)


async def request_erasure(
    conn: Connection,
    context: AppContext,
    principal: Principal,
    body: ErasureRequest,
    client_address: str,
) -> ErasureAccepted:
    """`DELETE /v1/me`: the person's bookings are given up and their sessions end in this
    request; the worker then erases what their role cannot reach (`erase_account`)."""
    assert principal.user_id is not None
    await auth.confirm_identity(
        conn, context, principal, body.password, client_address, code=body.code, second_factor=True
    )
    await _refuse_sole_admin(conn, principal.user_id)
    await give_up_bookings(conn, principal)
    await repo.close_own_account(conn)
    await jobs_repo.enqueue(
        conn, ERASE_TASK, {"user_id": str(principal.user_id)}, queue=MAINTENANCE
    )
    return ErasureAccepted(id=principal.user_id)


async def erase_account(
    db: Database, bus: EventBus, settings: Settings, user_id: UUID
) -> dict[str, int]:
    """The whole erasure as service_role (the worker's job, `slotease gdpr erase`), in steps
    that may each run again: anything still booked is given up, and once that has committed
    (with the webhook deliveries and messages it causes), every copy of the person is erased,
    those included; where Supabase Auth owns the account, its admin API erases that last."""
    async with service_transaction(db, bus) as conn:
        await _refuse_sole_admin(conn, user_id)
        await give_up_bookings(conn, Principal(identity=SERVICE, user_id=user_id))
    async with db.transaction(SERVICE) as conn:
        counts = await repo.erase_user(conn, user_id)
    if counts is None:
        raise NotFound("No such user.")
    await auth.delete_supabase_account(db, settings, user_id)
    return counts


async def user_id_of(db: Database, email: str) -> UUID:
    async with db.transaction(SERVICE) as conn:
        user = await repo.user_by_email(conn, email)
    if user is None:
        raise NotFound(f"No account with the email {email}.")
    user_id: UUID = user["id"]
    return user_id


# ----- export ---------------------------------------------------------------------------
async def export(conn: Connection, user_id: UUID) -> dict[str, Any]:
    """Every record about the person, as their own role (a request) or service_role (the
    operator) reads it."""
    hidden = await repo.records_their_role_cannot_read(conn, user_id)
    account = hidden.pop("account") or {}
    return {
        "exported_at": datetime.now(UTC),
        "user": {"id": user_id, **account},
        "profile": await repo.profile(conn, user_id),
        "memberships": await repo.memberships(conn, user_id),
        "appointments": await repo.appointments(conn, user_id),
        "tickets": await repo.tickets(conn, user_id),
        "waitlist": await repo.waitlist_entries(conn, user_id),
        "notifications": await repo.notifications(conn, user_id),
        "notification_preferences": await repo.notification_preferences(conn, user_id),
        "feedback": await repo.feedback(conn, user_id),
        "consents": await repo.consent_history(conn, user_id),
        "invitations": await repo.invitations(conn, account.get("email", "")),
        "calendar_feed": await repo.calendar_feed(conn, user_id),
        **hidden,
    }


async def export_account(db: Database, user_id: UUID) -> dict[str, Any]:
    async with db.transaction(SERVICE) as conn:
        return await export(conn, user_id)


# ----- consents -------------------------------------------------------------------------
async def get_consents(conn: Connection, user_id: UUID) -> Consents:
    latest = {row["purpose"]: row for row in await repo.latest_consents(conn, user_id)}
    return Consents(
        **{
            purpose: Consent(granted=latest[purpose]["granted"], at=latest[purpose]["at"],
                             source=latest[purpose]["source"])
            if purpose in latest else Consent(granted=DEFAULTS[purpose], at=None, source=None)
            for purpose in PURPOSES
        }
    )  # fmt: skip


async def put_consents(
    conn: Connection, user_id: UUID, body: ConsentsUpdate, source: str
) -> Consents:
    await repo.record_consents(conn, user_id, body.decisions(), source)
    return await get_consents(conn, user_id)


async def consent_history(conn: Connection, user_id: UUID) -> list[ConsentEvent]:
    return [ConsentEvent(**row) for row in await repo.consent_history(conn, user_id)]


# ----- the audit trail --------------------------------------------------------------------
async def audit_trail(
    conn: Connection,
    organization_id: UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    table: str | None,
    actor_id: UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[AuditEntry]:
    await require_admin(
        conn, organization_id, "Only the organization's admins read its audit trail."
    )
    after = decode_cursor(cursor, 2)
    rows = await repo.audit_entries(
        conn, organization_id, since=since, until=until, table=table, actor_id=actor_id,
        after=after, limit=limit,
    )  # fmt: skip
    items, next_cursor = page_of(rows, limit, key=["at", "id"])
    return Page[AuditEntry](items=[AuditEntry(**row) for row in items], next_cursor=next_cursor)
