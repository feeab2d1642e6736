"""All SQL of queues and tickets. Row-level security decides which rows exist for the caller;
the 0004 functions hold what no caller may do directly (allocating numbers, the public view
of a line, the grace-period sweep, a customer's own check-in), and the status trigger's
refusals are translated here into the problems the API answers."""

from __future__ import annotations

from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from slotease.db.catalogue import SqlState, refusals_of
from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one, fetch_row
from slotease.kit.dberrors import (
    FOREIGN_KEY_VIOLATION,
    INSUFFICIENT_PRIVILEGE,
    UNIQUE_VIOLATION,
    Refusal,
    RuleKey,
    refusals,
)
from slotease.kit.problems import Conflict, Forbidden, NotFound, Unprocessable

ONE_ACTIVE_TICKET = "tickets_one_active_per_user"

# What the 0004 functions' and constraints' refusals mean to a caller; anything else is a bug.
_REFUSALS: dict[RuleKey, Refusal] = {
    **refusals_of(SqlState.INVALID_TRANSITION, SqlState.CHECK_IN_REFUSED, SqlState.QUEUE_NOT_FOUND),
    (UNIQUE_VIOLATION, ONE_ACTIVE_TICKET): lambda _: Conflict(
        "You already hold an active ticket in this queue."
    ),
    INSUFFICIENT_PRIVILEGE: lambda _: Forbidden("You may not make this change to the ticket."),
    FOREIGN_KEY_VIOLATION: lambda _: Unprocessable("A referenced service or user does not exist."),
}
# A new ticket passes the insert policy only for oneself, a walk-in without an account, or
# someone the organization deals with (app.deals_with): anyone else is no user the caller sees.
_INSERT_REFUSALS: dict[RuleKey, Refusal] = {
    **_REFUSALS,
    INSUFFICIENT_PRIVILEGE: lambda _: NotFound("No such user."),
}

_QUEUE = "q.id, q.organization_id, q.name, q.prefix, q.service_id, q.settings, q.is_active"
_TICKET = (
    "t.id, t.queue_id, t.organization_id, t.user_id, q.prefix, t.number, t.service_date,"
    " t.status, t.priority, t.counter, t.appointment_id, t.estimated_wait_minutes"
)
_WITH_QUEUE = " join public.queues q on q.id = t.queue_id and q.organization_id = t.organization_id"


async def insert_queue(
    conn: Connection, org_id: UUID, name: str, prefix: str, service_id: UUID | None, settings: Row
) -> Row:
    with refusals(_REFUSALS):
        return await fetch_row(
            conn,
            "insert into public.queues as q (organization_id, name, prefix, service_id, settings)"
            " values (%(org)s, %(name)s, %(prefix)s, %(service)s, %(settings)s)"
            f" returning {_QUEUE}",
            {
                "org": org_id,
                "name": name,
                "prefix": prefix,
                "service": service_id,
                "settings": Jsonb(settings),
            },
        )


async def list_active_queues(
    conn: Connection, org_id: UUID, after: tuple[str, UUID] | None, limit: int
) -> list[Row]:
    return await fetch_all(
        conn,
        f"select {_QUEUE} from public.queues q"
        " where q.organization_id = %(org)s and q.is_active"
        " and (%(after_name)s::text is null or (q.name, q.id) > (%(after_name)s, %(after_id)s))"
        " order by q.name, q.id limit %(limit)s",
        {
            "org": org_id,
            "after_name": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit + 1,
        },
    )


_GET_QUEUE = (
    f"select {_QUEUE}, app.is_org_member(q.organization_id) as is_staff"
    " from public.queues q where q.id = %(id)s"
)
_EXPIRED_COLUMNS = (
    "id",
    "queue_id",
    "organization_id",
    "user_id",
    "prefix",
    "number",
    "service_date",
    "status",
    "counter",
    "priority",
    "appointment_id",
)
_EXPIRED = ", ".join(_EXPIRED_COLUMNS)


async def get_queue(conn: Connection, queue_id: UUID) -> Row | None:
    """The queue and whether the caller runs it (a member of its organization)."""
    return await fetch_one(conn, _GET_QUEUE, {"id": queue_id})


async def queue_swept(conn: Connection, queue_id: UUID) -> tuple[Row | None, list[Row]]:
    """`get_queue`, and the grace-period sweep of the queue when the caller runs it (the
    expired tickets, as `expire_called_tickets` returns them): one round trip, pipelined."""
    params = {"id": queue_id}
    async with conn.pipeline():
        queue = await conn.execute(_GET_QUEUE, params)
        expired = await conn.execute(
            f"select {', '.join(f'e.{column}' for column in _EXPIRED_COLUMNS)} from public.queues q"
            " cross join lateral app.expire_called_tickets(q.id) e"
            " where q.id = %(id)s and app.is_org_member(q.organization_id)",
            params,
        )
        return await queue.fetchone(), await expired.fetchall()


async def public_state(conn: Connection, queue_id: UUID) -> Row:
    return await fetch_row(conn, "select * from app.queue_public_state(%(id)s)", {"id": queue_id})


_SUMMARY = "select * from app.queue_summary(%(id)s)"


async def summary(conn: Connection, queue_id: UUID) -> Row:
    """How many wait and who is being served: what a change announces on the queue's board."""
    return await fetch_row(conn, _SUMMARY, {"id": queue_id})


async def positions(conn: Connection, ticket_ids: list[UUID]) -> list[Row]:
    """The waiting tickets among `ticket_ids` with their queue and position (one index range
    per ticket, not the line); the holder only where the caller may know."""
    return await fetch_all(
        conn,
        'select id, queue_id, organization_id, user_id, "position"'
        " from app.ticket_positions(%(ids)s::uuid[])",
        {"ids": ticket_ids},
    )


async def line(conn: Connection, queue_id: UUID) -> list[Row]:
    """Every waiting ticket's id and position; the holder only where the caller may know."""
    return await fetch_all(
        conn, 'select id, user_id, "position" from app.queue_line(%(id)s)', {"id": queue_id}
    )


async def active_tickets(conn: Connection, queue_id: UUID) -> list[Row]:
    """Waiting, called and serving tickets of a queue, as far as the caller sees them."""
    return await fetch_all(
        conn,
        f"select {_TICKET} from public.tickets t{_WITH_QUEUE}"
        " where t.queue_id = %(id)s and t.status in ('waiting', 'called', 'serving')"
        " order by t.status = 'waiting', t.priority desc, t.line_position_at, t.id",
        {"id": queue_id},
    )


async def expire_called_tickets(conn: Connection, queue_id: UUID | None) -> list[Row]:
    return await fetch_all(
        conn, f"select {_EXPIRED} from app.expire_called_tickets(%(id)s)", {"id": queue_id}
    )


async def insert_ticket(
    conn: Connection,
    queue_id: UUID,
    *,
    user_id: UUID | None,
    priority: int,
    appointment: Row | None = None,
) -> Row:
    """A waiting ticket with the queue's next number of the day; a checked-in appointment
    stands in line at its booked time."""
    with refusals(_INSERT_REFUSALS):
        return await fetch_row(
            conn,
            "with n as (select * from app.next_ticket_number(%(queue)s)),"
            " t as (insert into public.tickets (organization_id, queue_id, user_id, appointment_id,"
            "   appointment_starts_at, service_date, number, priority, line_position_at)"
            "  select q.organization_id, q.id, %(user)s, %(appointment)s, %(starts_at)s,"
            "   n.service_date, n.number, %(priority)s, coalesce(%(starts_at)s, now())"
            "  from n cross join public.queues q where q.id = %(queue)s"
            "  returning *)"
            f" select {_TICKET} from t{_WITH_QUEUE}",
            {
                "queue": queue_id,
                "user": user_id,
                "priority": priority,
                "appointment": appointment["id"] if appointment else None,
                "starts_at": appointment["starts_at"] if appointment else None,
            },
        )


async def get_ticket(conn: Connection, ticket_id: UUID) -> Row | None:
    return await fetch_one(
        conn,
        f"select {_TICKET} from public.tickets t{_WITH_QUEUE} where t.id = %(id)s",
        {"id": ticket_id},
    )


# Named so that bench/call_next.py runs the very same statement through pgbench.
CLAIM_SQL = (
    "with next as ("
    " select id, organization_id from public.tickets"
    " where queue_id = %(queue)s and status = 'waiting'"
    " order by priority desc, line_position_at, id"
    " limit 1 for update skip locked),"
    " t as (update public.tickets t set status = 'called', counter = %(counter)s"
    "  from next where t.id = next.id and t.organization_id = next.organization_id"
    "  returning t.*)"
    f" select {_TICKET} from t{_WITH_QUEUE}"
)


async def claim_next(conn: Connection, queue_id: UUID, counter: str) -> tuple[Row | None, Row]:
    """Call the first waiting ticket in line order, and read the queue's summary after it, in
    one round trip (pipelined). SKIP LOCKED: a ticket another counter is claiming right now is
    passed over, so concurrent calls never get the same one."""
    with refusals(_REFUSALS):
        async with conn.pipeline():
            claimed = await conn.execute(CLAIM_SQL, {"queue": queue_id, "counter": counter})
            summary = await conn.execute(_SUMMARY, {"id": queue_id})
            row, state = await claimed.fetchone(), await summary.fetchone()
    assert state is not None, "the caller has just read the queue"
    return row, state


async def update_ticket(conn: Connection, ticket_id: UUID, changes: Row) -> Row | None:
    """Apply `changes` (column names from our own code); None when the caller may not."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in changes
    )
    query = sql.SQL(
        "with t as (update public.tickets t set {} where id = %(id)s returning t.*)"
        " select {} from t{}"
    ).format(assignments, sql.SQL(_TICKET), sql.SQL(_WITH_QUEUE))
    with refusals(_REFUSALS):
        return await fetch_one(conn, query, {**changes, "id": ticket_id})


async def check_in_appointment(
    conn: Connection, appointment_id: UUID, queue_id: UUID
) -> Row | None:
    """Mark the appointment checked in; None when the caller cannot see it."""
    with refusals(_REFUSALS):
        return await fetch_one(
            conn,
            "select id, starts_at, customer_id, organization_id"
            " from app.check_in_appointment(%(appointment)s, %(queue)s)",
            {"appointment": appointment_id, "queue": queue_id},
        )
