"""The rules of the waitlist. Offers themselves are made by the database whenever a place
frees up (migration 0005); this layer checks joins, answers reads and takes offers.

Refusals that follow a change worth keeping (an offer that expired or was lost, and thereby
passed on or given up) are returned rather than raised, so the request still commits it.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from slotease.appointments import service as appointments
from slotease.auth.principal import Principal
from slotease.db.database import Connection, Database
from slotease.db.queries import Row
from slotease.kit.events import EventBus, service_transaction
from slotease.kit.pagination import Page, cursor_key, page_of, timestamp_key
from slotease.kit.problems import Conflict, NotFound
from slotease.waitlist import repository as repo
from slotease.waitlist.schemas import AcceptedOffer, WaitlistEntry, WaitlistJoin

_REFUSALS = {
    "expired": "The offer has expired; the place went to the next in line.",
    "full": "The place was taken before the offer was accepted; the offer is lost.",
    "accepted_before": "This offer was accepted already.",
    "waiting": "There is no offer to accept yet.",
}


def _entry(row: Row) -> WaitlistEntry:
    zone = ZoneInfo(row["timezone"])
    local = {
        "starts_at": row["starts_at"].astimezone(zone),
        "ends_at": row["ends_at"].astimezone(zone),
    }
    return WaitlistEntry.model_validate(row | local)


async def expire_due_offers(conn: Connection) -> None:
    """Expire the offers whose hold ran out and pass their places on; lazily, before any
    waitlist read or write, so nobody sees or takes an offer that is over."""
    await repo.expire_offers(conn)
    await appointments.announce_waitlist_offers(conn)


async def expire_offers_on_time(db: Database, bus: EventBus) -> None:
    """The periodic sweep, so that an offer passes on when its hold ends, without anyone
    calling a waitlist route."""
    async with service_transaction(db, bus) as conn:
        await expire_due_offers(conn)


async def _own_entry(conn: Connection, principal: Principal, entry_id: UUID) -> Row:
    row = await repo.get_entry(conn, entry_id)
    if row is None or row["user_id"] != principal.user_id:
        raise NotFound("No such waitlist entry.")
    return row


async def join(conn: Connection, body: WaitlistJoin) -> WaitlistEntry:
    """Only a slot the service offers (on its grid, open, within notice and advance) and that
    is full right now; a slot with a free place is booked, not waited for."""
    service = await appointments.active_service(conn, body.service_id)
    ends_at = await appointments.offered_end(conn, service, body.starts_at)
    # Under the service's capacity lock, no place frees up between this count and the insert
    # without the database seeing the new entry when it makes its offers.
    await repo.lock_service_places(conn, body.service_id)
    place_end = ends_at + timedelta(minutes=service["buffer_minutes"])
    taken = await repo.places_taken(conn, body.service_id, body.starts_at, place_end)
    if taken < service["capacity"]:
        raise Conflict("This slot has a free place: book it instead.")
    row = await repo.insert_entry(conn, body.service_id, body.starts_at)
    if row is None:
        raise Conflict("You are already on the waitlist of this slot.")
    return _entry(row)


async def list_own(conn: Connection, cursor: str | None, limit: int) -> Page[WaitlistEntry]:
    await expire_due_offers(conn)
    rows = await repo.list_own_entries(conn, cursor_key(cursor, timestamp_key), limit)
    items, next_cursor = page_of(rows, limit, ["created_at", "id"])
    return Page[WaitlistEntry](items=[_entry(r) for r in items], next_cursor=next_cursor)


async def leave(conn: Connection, principal: Principal, entry_id: UUID) -> None:
    """Leaving with an offer in hand passes it to the next waiter (a database trigger)."""
    await expire_due_offers(conn)
    entry = await _own_entry(conn, principal, entry_id)
    if entry["status"] not in ("waiting", "offered"):
        raise Conflict(f"This entry is {entry['status']}: there is nothing to leave.")
    # The capacity lock before the row lock, in the order every offer takes them.
    await repo.lock_service_places(conn, entry["service_id"])
    if not await repo.delete_entry(conn, entry):
        raise NotFound("No such waitlist entry.")
    await appointments.announce_waitlist_offers(conn)


async def accept(
    conn: Connection, principal: Principal, entry_id: UUID
) -> AcceptedOffer | Conflict:
    await expire_due_offers(conn)
    entry = await _own_entry(conn, principal, entry_id)
    if entry["status"] == "offered":
        # The slot must still be one the service offers (hours, closures, notice).
        service = await appointments.active_service(conn, entry["service_id"])
        await appointments.offered_end(conn, service, entry["starts_at"])
    result = await repo.accept_offer(conn, entry_id)
    await appointments.announce_waitlist_offers(conn)
    if result["outcome"] == "not_found":
        raise NotFound("No such waitlist entry.")
    if result["outcome"] != "booked":
        return Conflict(_REFUSALS[result["outcome"]])
    appointment = await appointments.get_appointment(conn, result["appointment_id"])
    appointments.changed("appointment.created", appointment)
    booked = await repo.get_entry(conn, entry_id)
    assert booked is not None
    return AcceptedOffer(**_entry(booked).model_dump(), appointment=appointment)
