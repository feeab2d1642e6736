"""Queues and tickets: who may do what, the line's positions and wait estimates, and the events
each change announces. No SQL here, and never a commit: the request owns the transaction, and
events are delivered only once it has committed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from slotease.auth.principal import Principal
from slotease.db.database import Connection, Database
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
class LineView:
    """A queue's line right now: positions of its waiting tickets, and the pace that turns a
    position into a wait."""

    state: Row
    positions: dict[UUID, int]
    holders: dict[UUID, UUID | None]
    minutes_per_ticket: float

    def position(self, ticket_id: UUID) -> int | None:
        return self.positions.get(ticket_id)

    def wait(self, ticket_id: UUID) -> int | None:
        position = self.positions.get(ticket_id)
        if position is None:
            return None
        return wait_minutes(position, self.minutes_per_ticket, self.state["active_counters"])


def _history(state: Row) -> ServiceHistory:
    return ServiceHistory(minutes=state["service_minutes"], hours=state["service_hours"])


async def _positions(conn: Connection, queue_id: UUID) -> dict[UUID, int]:
    return {row["id"]: row["position"] for row in await repository.line(conn, queue_id)}


async def _line_view(conn: Connection, queue_id: UUID) -> LineView:
    state = await repository.public_state(conn, queue_id)
    line = await repository.line(conn, queue_id)
    return LineView(
        state=state,
        positions={row["id"]: row["position"] for row in line},
        holders={row["id"]: row["user_id"] for row in line},
        minutes_per_ticket=service_minutes(
            _history(state), state["local_hour"], state["default_service_minutes"]
        ),
    )


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


def _ticket(row: Row, view: LineView) -> Ticket:
    return Ticket(
        **{key: row[key] for key in _ROW_FIELDS},
        number=display_number(row["prefix"], row["number"]),
        position=view.position(row["id"]),
        estimated_wait_minutes=view.wait(row["id"]),
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
    before: dict[UUID, int],
    view: LineView,
    changed: Iterable[tuple[TicketEventName, Row]],
) -> None:
    """Emit the events of one change: each changed ticket, every other waiting ticket whose
    position moved, and the queue's public state."""
    changed_ids: set[UUID] = set()
    for event, row in changed:
        changed_ids.add(row["id"])
        emit(
            DomainEvent(event, _ticket(row, view).model_dump(mode="json", include=_PAYLOAD_FIELDS))
        )
    for ticket_id, position in view.positions.items():
        if ticket_id in changed_ids or before.get(ticket_id) == position:
            continue
        emit(
            DomainEvent(
                "ticket.position",
                {
                    "id": str(ticket_id),
                    "queue_id": str(queue["id"]),
                    "organization_id": str(queue["organization_id"]),
                    "user_id": _text(view.holders.get(ticket_id)),
                    "position": position,
                    "estimated_wait_minutes": view.wait(ticket_id),
                },
            )
        )
    emit(
        DomainEvent(
            "queue.updated",
            {
                "queue_id": str(queue["id"]),
                "organization_id": str(queue["organization_id"]),
                "waiting_count": view.state["waiting_count"],
                "now_serving": view.state["now_serving"],
            },
        )
    )


def _text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


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


async def _visible_queue(conn: Connection, queue_id: UUID) -> Row:
    queue = await repository.get_queue(conn, queue_id)
    if queue is None:
        raise NotFound("No such queue.")
    return queue


async def _staffed_queue(conn: Connection, queue_id: UUID) -> Row:
    queue = await _visible_queue(conn, queue_id)
    if not queue["is_staff"]:
        raise Forbidden("Only the organization's staff may run this queue.")
    return queue


async def queue_state(conn: Connection, queue_id: UUID) -> QueueState:
    """The public view for everyone; the organization's staff also get the tickets. A read
    only: the grace period is applied by the periodic job, and before every call."""
    queue = await _visible_queue(conn, queue_id)
    view = await _line_view(conn, queue_id)
    state = view.state
    observed = observed_service_minutes(_history(state), state["local_hour"])
    error = mean_absolute_error(state["quoted_minutes"], state["actual_minutes"])
    tickets = None
    if queue["is_staff"]:
        tickets = [
            LineTicket(
                id=row["id"],
                number=display_number(row["prefix"], row["number"]),
                status=row["status"],
                priority=row["priority"],
                counter=row["counter"],
                user_id=row["user_id"],
                position=view.position(row["id"]),
            )
            for row in await repository.active_tickets(conn, queue_id)
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


async def expire_called_tickets(conn: Connection, queue_id: UUID | None = None) -> int:
    """Apply the grace period: called tickets not started in time become no-shows (requeued
    at the back where the queue says so). Runs before a queue calls its next ticket, and for
    every queue from a periodic job (`queue_id` None). Returns how many expired."""
    expired = await repository.expire_called_tickets(conn, queue_id)
    for queue_id_of_rows in {row["queue_id"] for row in expired}:
        rows = [row for row in expired if row["queue_id"] == queue_id_of_rows]
        view = await _line_view(conn, queue_id_of_rows)
        queue = {"id": queue_id_of_rows, "organization_id": rows[0]["organization_id"]}
        # A requeued ticket joins at the back and a dropped one was not in the line: nobody
        # else's position moves, so the positions before are the positions now.
        _announce(queue, view.positions, view, [("ticket.no_show", row) for row in rows])
    return len(expired)


async def expire_called_tickets_on_time(db: Database, bus: EventBus) -> int:
    """The periodic sweep over every queue, so that no-shows happen without anyone calling."""
    async with service_transaction(db, bus) as conn:
        return await expire_called_tickets(conn)


# ---------------------------------------------------------------------------------------
# Tickets.
# ---------------------------------------------------------------------------------------
async def _quote(conn: Connection, row: Row, view: LineView) -> Row:
    """Keep the wait a ticket was promised on entering the line, to measure it later."""
    quoted = await repository.update_ticket(
        conn, row["id"], {"estimated_wait_minutes": view.wait(row["id"])}
    )
    assert quoted is not None, "the caller has just written this ticket"
    return quoted


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

    before = await _positions(conn, queue_id)
    row = await repository.insert_ticket(
        conn, queue_id, user_id=user_id, priority=body.priority, appointment=appointment
    )
    view = await _line_view(conn, queue_id)
    row = await _quote(conn, row, view)
    _announce(queue, before, view, [("ticket.created", row)])
    return _ticket(row, view)


async def _visible_ticket(conn: Connection, ticket_id: UUID) -> Row:
    row = await repository.get_ticket(conn, ticket_id)
    if row is None:
        raise NotFound("No such ticket.")
    return row


async def get_ticket(conn: Connection, ticket_id: UUID) -> Ticket:
    row = await _visible_ticket(conn, ticket_id)
    return _ticket(row, await _line_view(conn, row["queue_id"]))


async def cancel_ticket(conn: Connection, ticket_id: UUID) -> Ticket:
    """The holder gives up their place."""
    row = await _visible_ticket(conn, ticket_id)
    queue = await _visible_queue(conn, row["queue_id"])
    before = await _positions(conn, row["queue_id"])
    changed = await repository.update_ticket(conn, ticket_id, {"status": "cancelled"})
    if changed is None:
        raise Forbidden("You may not cancel this ticket.")
    view = await _line_view(conn, row["queue_id"])
    _announce(queue, before, view, [("ticket.cancelled", changed)])
    return _ticket(changed, view)


async def call_next(conn: Connection, queue_id: UUID, counter: str) -> Ticket | None:
    """Call the first ticket in line to `counter`; None when nobody waits."""
    queue = await _staffed_queue(conn, queue_id)
    await expire_called_tickets(conn, queue_id)
    before = await _positions(conn, queue_id)
    row = await repository.claim_next(conn, queue_id, counter)
    if row is None:
        return None
    view = await _line_view(conn, queue_id)
    _announce(queue, before, view, [("ticket.called", row)])
    return _ticket(row, view)


async def update_ticket(conn: Connection, body: TicketUpdate) -> Ticket:
    """A staff action on one ticket; the database refuses any change the rules do not allow."""
    row = await _visible_ticket(conn, body.ticket_id)
    queue = await _staffed_queue(conn, row["queue_id"])
    if body.action == "transfer":
        assert body.target_queue_id is not None, "validated by the schema"
        return await _transfer(conn, queue, row, body.target_queue_id)

    before = await _positions(conn, row["queue_id"])
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
    view = await _line_view(conn, row["queue_id"])
    if body.action == "requeue":
        changed = await _quote(conn, changed, view)
    _announce(queue, before, view, [(event, changed)])
    return _ticket(changed, view)


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

    before_source = await _positions(conn, row["queue_id"])
    before_target = await _positions(conn, target_id)
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
    source_view = await _line_view(conn, row["queue_id"])
    target_view = await _line_view(conn, target_id)
    moved = await _quote(conn, moved, target_view)
    _announce(queue, before_source, source_view, [("ticket.moved", ended)])
    _announce(target, before_target, target_view, [("ticket.created", moved)])
    return _ticket(moved, target_view)
