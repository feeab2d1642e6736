"""Queues and tickets: who may do what, the line's positions and wait estimates, and the events
each change announces. No SQL here, and never a commit: the request owns the transaction, and
events are delivered only once it has committed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from slotease.auth.principal import Principal
from slotease.db.database import ANONYMOUS, Connection, Database
from slotease.db.queries import Row
from slotease.kit.events import DomainEvent, EventBus, emit, service_transaction
from slotease.kit.eventtypes import TicketEventName
from slotease.kit.pagination import Page, cursor_key, page_of, text_key
from slotease.kit.problems import Conflict, Forbidden, NotFound
from slotease.organizations.access import NO_SUCH_ORGANIZATION, require_admin, standing
from slotease.queues import repository
from slotease.queues.estimates import (
    ServiceHistory,
    mean_absolute_error,
    observed_service_minutes,
    service_minutes,
    wait_minutes,
)
from slotease.queues.schemas import (
    LineTicket,
    NowServing,
    Queue,
    QueueCreate,
    QueueState,
    Ticket,
    TicketCreate,
    TicketPosition,
    TicketUpdate,
)

# The status each staff action moves a ticket to, and the event that announces it.
_ACTIONS: dict[str, tuple[str, TicketEventName]] = {
    "call": ("called", "ticket.called"),
    "start": ("serving", "ticket.serving"),
    "complete": ("served", "ticket.served"),
    "no_show": ("no_show", "ticket.no_show"),
    "cancel": ("cancelled", "ticket.cancelled"),
    "requeue": ("waiting", "ticket.moved"),
}
_ACTIVE = ("waiting", "called", "serving")


def display_number(prefix: str, number: int) -> str:
    return f"{prefix}-{number:03d}"


@dataclass(frozen=True)
class Pace:
    """What turns a position into a wait: the service time per ticket, the counters at work."""

    minutes_per_ticket: float
    counters: int

    def wait(self, position: int) -> int:
        return wait_minutes(position, self.minutes_per_ticket, self.counters)

    def wait_of(self, position: int | None) -> int | None:
        return None if position is None else self.wait(position)


def _history(state: Row) -> ServiceHistory:
    return ServiceHistory(minutes=state["service_minutes"], hours=state["service_hours"])


def _pace(state: Row) -> Pace:
    minutes = service_minutes(
        _history(state), state["local_hour"], state["default_service_minutes"]
    )
    return Pace(minutes, state["active_counters"])


async def _position(conn: Connection, ticket_id: UUID) -> int | None:
    """The ticket's place in line now, None unless it waits: one range of the line's index."""
    rows = await repository.positions(conn, [ticket_id])
    return rows[0]["position"] if rows else None


def _moved(before: int | None, after: int | None, waiting: int) -> tuple[int, int] | None:
    """The positions (first, last) whose ticket stands elsewhere once a ticket went from
    `before` to `after` (None: not in the line) and `waiting` wait: everyone behind the place
    a ticket left or took, or between the two places of a move within the line."""
    if before is None:
        if after is None:
            return None
        first, last = after + 1, waiting
    elif after is None:
        first, last = before, waiting
    elif before == after:
        return None
    else:
        first, last = min(before, after), max(before, after)
    return (first, last) if first <= last else None


_ROW_FIELDS = (
    "id",
    "queue_id",
    "organization_id",
    "user_id",
    "service_date",
    "status",
    "priority",
    "counter",
    "appointment_id",
)


def _ticket(row: Row, position: int | None = None, pace: Pace | None = None) -> Ticket:
    return Ticket(
        **{key: row[key] for key in _ROW_FIELDS},
        number=display_number(row["prefix"], row["number"]),
        position=position,
        estimated_wait_minutes=None if pace is None else pace.wait_of(position),
    )


_PAYLOAD_FIELDS = {
    "id",
    "queue_id",
    "organization_id",
    "user_id",
    "number",
    "status",
    "counter",
    "priority",
    "position",
    "estimated_wait_minutes",
}


def _announce(
    queue: Row,
    summary: Row,
    changed: Iterable[tuple[TicketEventName, Ticket]],
    moved: tuple[int, int] | None,
) -> None:
    """Emit the events of one change: each changed ticket, one `queue.moved` naming the
    positions that changed (never an event per waiting ticket: the realtime hub turns it into
    positions for the tickets someone follows), and the queue's public state."""
    for event, ticket in changed:
        emit(DomainEvent(event, ticket.model_dump(mode="json", include=_PAYLOAD_FIELDS)))
    line = {
        "queue_id": str(queue["id"]),
        "organization_id": str(queue["organization_id"]),
        "waiting_count": summary["waiting_count"],
    }
    if moved is not None:
        emit(DomainEvent("queue.moved", {**line, "first_moved": moved[0], "last_moved": moved[1]}))
    emit(DomainEvent("queue.updated", {**line, "now_serving": summary["now_serving"]}))


# ---------------------------------------------------------------------------------------
# Queues.
# ---------------------------------------------------------------------------------------
def _queue(row: Row) -> Queue:
    return Queue.model_validate(row)


async def create_queue(conn: Connection, org_id: UUID, body: QueueCreate) -> Queue:
    await require_admin(conn, org_id)
    row = await repository.insert_queue(
        conn, org_id, body.name, body.prefix, body.service_id, body.settings.model_dump()
    )
    return _queue(row)


async def list_queues(
    conn: Connection, org_id: UUID, cursor: str | None, limit: int
) -> Page[Queue]:
    if await standing(conn, org_id) is None:
        raise NotFound(NO_SUCH_ORGANIZATION)
    rows = await repository.list_active_queues(conn, org_id, cursor_key(cursor, text_key), limit)
    items, next_cursor = page_of(rows, limit, ["name", "id"])
    return Page(items=[_queue(row) for row in items], next_cursor=next_cursor)


def _found(queue: Row | None) -> Row:
    if queue is None:
        raise NotFound("No such queue.")
    return queue


def _staffed(queue: Row | None) -> Row:
    found = _found(queue)
    if not found["is_staff"]:
        raise Forbidden("Only the organization's staff may run this queue.")
    return found


async def _visible_queue(conn: Connection, queue_id: UUID) -> Row:
    return _found(await repository.get_queue(conn, queue_id))


async def _staffed_queue(conn: Connection, queue_id: UUID) -> Row:
    return _staffed(await repository.get_queue(conn, queue_id))


async def queue_state(conn: Connection, queue_id: UUID) -> QueueState:
    """The public view for everyone; the organization's staff also get the tickets. A read
    only: the grace period is applied by the periodic job, and before every call."""
    queue = await _visible_queue(conn, queue_id)
    state = await repository.public_state(conn, queue_id)
    observed = observed_service_minutes(_history(state), state["local_hour"])
    error = mean_absolute_error(state["quoted_minutes"], state["actual_minutes"])
    tickets = None
    if queue["is_staff"]:
        rows = await repository.active_tickets(conn, queue_id)
        # Staff see the whole line, and the waiting tickets come last in line order: their
        # positions are their ranks among them.
        called = sum(row["status"] != "waiting" for row in rows)
        tickets = [
            LineTicket(
                id=row["id"],
                number=display_number(row["prefix"], row["number"]),
                status=row["status"],
                priority=row["priority"],
                counter=row["counter"],
                user_id=row["user_id"],
                position=index - called + 1 if row["status"] == "waiting" else None,
            )
            for index, row in enumerate(rows)
        ]
    return QueueState(
        id=queue["id"],
        name=queue["name"],
        prefix=queue["prefix"],
        waiting_count=state["waiting_count"],
        now_serving=[NowServing.model_validate(item) for item in state["now_serving"]],
        average_service_minutes=None if observed is None else round(observed, 1),
        estimate_error_minutes=None if error is None else round(error, 1),
        tickets=tickets,
    )


async def positions_of(db: Database, ticket_ids: list[UUID]) -> list[TicketPosition]:
    """Where the waiting tickets among `ticket_ids` stand now and how long they should wait,
    for whoever follows them live: one statement for the positions (one index range each, or
    one pass per line for many), one per queue for its pace. Read as anonymous, like a
    queue's public screen: nothing personal, so the holder is not named (`user_id` null);
    the topic's subscribers know whose ticket they follow."""
    async with db.transaction(ANONYMOUS) as conn:
        rows = await repository.positions(conn, ticket_ids)
        paces = {
            queue_id: _pace(await repository.public_state(conn, queue_id))
            for queue_id in {row["queue_id"] for row in rows}
        }
    return [
        TicketPosition(
            id=row["id"],
            queue_id=row["queue_id"],
            organization_id=row["organization_id"],
            user_id=row["user_id"],
            position=row["position"],
            estimated_wait_minutes=paces[row["queue_id"]].wait(row["position"]),
        )
        for row in rows
    ]


async def expire_called_tickets(conn: Connection, queue_id: UUID | None = None) -> int:
    """Apply the grace period: called tickets not started in time become no-shows (requeued
    at the back where the queue says so). Runs before a queue calls its next ticket, and for
    every queue from a periodic job (`queue_id` None). Returns how many expired."""
    expired = await repository.expire_called_tickets(conn, queue_id)
    await _announce_expired(conn, expired)
    return len(expired)


async def _announce_expired(conn: Connection, expired: list[Row]) -> None:
    for queue_id_of_rows in {row["queue_id"] for row in expired}:
        rows = [row for row in expired if row["queue_id"] == queue_id_of_rows]
        state = await repository.public_state(conn, queue_id_of_rows)
        pace = _pace(state)
        requeued = {
            row["id"]: row["position"]
            for row in await repository.positions(conn, [row["id"] for row in rows])
        }
        queue = {"id": queue_id_of_rows, "organization_id": rows[0]["organization_id"]}
        # A requeued ticket joins at the back and a dropped one was not in the line: nobody
        # else's position moves.
        changed: list[tuple[TicketEventName, Ticket]] = [
            ("ticket.no_show", _ticket(row, requeued.get(row["id"]), pace)) for row in rows
        ]
        _announce(queue, state, changed, None)


async def expire_called_tickets_on_time(db: Database, bus: EventBus) -> int:
    """The periodic sweep over every queue, so that no-shows happen without anyone calling."""
    async with service_transaction(db, bus) as conn:
        return await expire_called_tickets(conn)


# ---------------------------------------------------------------------------------------
# Tickets.
# ---------------------------------------------------------------------------------------
async def _quote(conn: Connection, row: Row, wait: int | None) -> Row:
    """Keep the wait a ticket was promised on entering the line, to measure it later."""
    quoted = await repository.update_ticket(conn, row["id"], {"estimated_wait_minutes": wait})
    assert quoted is not None, "the caller has just written this ticket"
    return quoted


async def _entered(conn: Connection, row: Row) -> tuple[Ticket, Row, int | None]:
    """A ticket that has just entered the line (joined, transferred in, requeued): its place,
    the wait it is promised (kept), and the queue's state as the change announces it."""
    position = await _position(conn, row["id"])
    state = await repository.public_state(conn, row["queue_id"])
    pace = _pace(state)
    row = await _quote(conn, row, pace.wait_of(position))
    return _ticket(row, position, pace), state, position


async def join_queue(
    conn: Connection, principal: Principal, queue_id: UUID, body: TicketCreate
) -> Ticket:
    """A customer joins remotely; staff add a walk-in (optionally for a user, with a priority);
    either checks in a booked appointment, which then stands in line at its booked time."""
    queue = await _visible_queue(conn, queue_id)
    staff = bool(queue["is_staff"])
    if not staff and body.priority:
        raise Forbidden("Only the organization's staff may set a priority.")
    if not staff and body.user_id not in (None, principal.user_id):
        raise Forbidden("Only the organization's staff may take a ticket for someone else.")
    if not staff and principal.user_id is None:
        raise Forbidden("Only the organization's staff may add walk-in tickets.")

    appointment = None
    user_id = body.user_id if staff else principal.user_id
    if body.appointment_id is not None:
        appointment = await repository.check_in_appointment(conn, body.appointment_id, queue_id)
        if appointment is None:
            raise NotFound("No such appointment.")
        user_id = appointment["customer_id"]

    row = await repository.insert_ticket(
        conn, queue_id, user_id=user_id, priority=body.priority, appointment=appointment
    )
    ticket, state, position = await _entered(conn, row)
    moved = _moved(None, position, state["waiting_count"])
    _announce(queue, state, [("ticket.created", ticket)], moved)
    return ticket


async def _visible_ticket(conn: Connection, ticket_id: UUID) -> Row:
    row = await repository.get_ticket(conn, ticket_id)
    if row is None:
        raise NotFound("No such ticket.")
    return row


async def get_ticket(conn: Connection, ticket_id: UUID) -> Ticket:
    row = await _visible_ticket(conn, ticket_id)
    if row["status"] != "waiting":
        return _ticket(row)
    position = await _position(conn, ticket_id)
    return _ticket(row, position, _pace(await repository.public_state(conn, row["queue_id"])))


async def _place(conn: Connection, row: Row) -> int | None:
    return await _position(conn, row["id"]) if row["status"] == "waiting" else None


async def cancel_ticket(conn: Connection, ticket_id: UUID) -> Ticket:
    """The holder gives up their place."""
    row = await _visible_ticket(conn, ticket_id)
    queue = await _visible_queue(conn, row["queue_id"])
    before = await _place(conn, row)
    changed = await repository.update_ticket(conn, ticket_id, {"status": "cancelled"})
    if changed is None:
        raise Forbidden("You may not cancel this ticket.")
    summary = await repository.summary(conn, row["queue_id"])
    ticket = _ticket(changed)
    moved = _moved(before, None, summary["waiting_count"])
    _announce(queue, summary, [("ticket.cancelled", ticket)], moved)
    return ticket


async def call_next(conn: Connection, queue_id: UUID, counter: str) -> Ticket | None:
    """Call the first ticket in line to `counter`; None when nobody waits. What it costs does
    not depend on the line's length: the claim takes one index row, the announcement says
    that everyone left moved up one place. Two round trips: the queue with its grace-period
    sweep, then the claim with the queue's summary."""
    found, expired = await repository.queue_swept(conn, queue_id)
    queue = _staffed(found)
    await _announce_expired(conn, expired)
    row, summary = await repository.claim_next(conn, queue_id, counter)
    if row is None:
        return None
    ticket = _ticket(row)
    _announce(
        queue, summary, [("ticket.called", ticket)], _moved(1, None, summary["waiting_count"])
    )
    return ticket


async def update_ticket(conn: Connection, body: TicketUpdate) -> Ticket:
    """A staff action on one ticket; the database refuses any change the rules do not allow."""
    row = await _visible_ticket(conn, body.ticket_id)
    queue = await _staffed_queue(conn, row["queue_id"])
    if body.action == "transfer":
        assert body.target_queue_id is not None, "validated by the schema"
        return await _transfer(conn, queue, row, body.target_queue_id)

    before = await _place(conn, row)
    if body.action == "set_priority":
        if row["status"] != "waiting":
            raise Conflict("Only a waiting ticket's priority can change.")
        changes: Row = {"priority": body.priority}
        event: TicketEventName = "ticket.moved"
    else:
        status, event = _ACTIONS[body.action]
        if row["status"] == status:
            raise Conflict(f"The ticket is already {status}.")
        changes = {"status": status}
        # Without a counter, a call keeps the one the ticket already has (or none).
        if body.action == "call" and body.counter is not None:
            changes["counter"] = body.counter
    changed = await repository.update_ticket(conn, body.ticket_id, changes)
    if changed is None:
        raise Forbidden("You may not change this ticket.")
    if body.action == "requeue":
        ticket, state, after = await _entered(conn, changed)
    else:
        after = await _place(conn, changed)
        state = await repository.public_state(conn, row["queue_id"])
        ticket = _ticket(changed, after, _pace(state))
    _announce(queue, state, [(event, ticket)], _moved(before, after, state["waiting_count"]))
    return ticket


async def _transfer(conn: Connection, queue: Row, row: Row, target_id: UUID) -> Ticket:
    """Move a ticket to another queue of the organization: a new number there, waiting, with
    its priority; the old ticket ends (served when its service here was under way)."""
    target = await repository.get_queue(conn, target_id)
    if target is None:
        raise NotFound("No such target queue.")
    if target["organization_id"] != row["organization_id"] or target_id == row["queue_id"]:
        raise Conflict("A ticket moves only to another queue of its organization.")
    if row["status"] not in _ACTIVE:
        raise Conflict(f"A {row['status']} ticket cannot be transferred.")

    before = await _place(conn, row)
    moved = await repository.insert_ticket(
        conn, target_id, user_id=row["user_id"], priority=row["priority"]
    )
    ended = await repository.update_ticket(
        conn,
        row["id"],
        {
            "status": "served" if row["status"] == "serving" else "cancelled",
            "transferred_to": moved["id"],
        },
    )
    assert ended is not None, "staff of the organization may change its tickets"
    source = await repository.summary(conn, row["queue_id"])
    ticket, target_state, position = await _entered(conn, moved)
    _announce(
        queue,
        source,
        [("ticket.moved", _ticket(ended))],
        _moved(before, None, source["waiting_count"]),
    )
    moved_there = _moved(None, position, target_state["waiting_count"])
    _announce(target, target_state, [("ticket.created", ticket)], moved_there)
    return ticket
