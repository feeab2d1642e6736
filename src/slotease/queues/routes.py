"""HTTP routes of queues and tickets."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from slotease.auth.deps import DbDep, SignedIn
from slotease.kit.openapi import NOT_FOUND, STAFF_ONLY, Responses
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.queues import service
from slotease.queues.schemas import (
    CallNext,
    Queue,
    QueueCreate,
    QueueState,
    Ticket,
    TicketCreate,
    TicketUpdate,
)

router = APIRouter(tags=["queues"])

CHANGE: Responses = {
    **STAFF_ONLY,
    409: {"description": "The ticket's status does not allow this change"},
}


@router.post(
    "/organizations/{org_id}/queues", status_code=status.HTTP_201_CREATED, responses=STAFF_ONLY
)
async def create_queue(org_id: UUID, body: QueueCreate, _: SignedIn, conn: DbDep) -> Queue:
    """Admins open a queue; tickets are numbered `<prefix>-001` onwards each local day."""
    return await service.create_queue(conn, org_id, body)


@router.get("/organizations/{org_id}/queues", responses=NOT_FOUND)
async def list_queues(
    org_id: UUID, conn: DbDep, cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_LIMIT
) -> Page[Queue]:
    """The organization's active queues."""
    return await service.list_queues(conn, org_id, cursor, limit)


@router.get("/queues/{queue_id}", responses=NOT_FOUND)
async def get_queue(queue_id: UUID, conn: DbDep) -> QueueState:
    """Counts, now serving and the pace of the line for anyone; the organization's staff also
    get the waiting and active tickets."""
    return await service.queue_state(conn, queue_id)


@router.post(
    "/queues/{queue_id}/tickets",
    status_code=status.HTTP_201_CREATED,
    responses={**STAFF_ONLY, 409: {"description": "Already holding an active ticket here"}},
)
async def join_queue(
    queue_id: UUID, body: TicketCreate, principal: SignedIn, conn: DbDep
) -> Ticket:
    return await service.join_queue(conn, principal, queue_id, body)


@router.get("/tickets/{ticket_id}", responses=NOT_FOUND)
async def get_ticket(ticket_id: UUID, _: SignedIn, conn: DbDep) -> Ticket:
    """The holder's or staff's view of a ticket, with its live position and wait."""
    return await service.get_ticket(conn, ticket_id)


@router.delete("/tickets/{ticket_id}", responses=CHANGE)
async def cancel_ticket(ticket_id: UUID, _: SignedIn, conn: DbDep) -> Ticket:
    return await service.cancel_ticket(conn, ticket_id)


@router.post(
    "/queues/{queue_id}/call-next",
    response_model=Ticket,
    responses={**STAFF_ONLY, 204: {"description": "Nobody is waiting"}},
)
async def call_next(queue_id: UUID, body: CallNext, _: SignedIn, conn: DbDep) -> Ticket | Response:
    ticket = await service.call_next(conn, queue_id, body.counter)
    if ticket is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return ticket


@router.post("/queue/update", responses=CHANGE)
async def update_ticket(body: TicketUpdate, _: SignedIn, conn: DbDep) -> Ticket:
    """Staff actions: call, start, complete, no_show, cancel, requeue, transfer, set_priority."""
    return await service.update_ticket(conn, body)
