"""HTTP routes of the waitlist."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from slotease.auth.deps import CurrentUser, DbDep
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.waitlist import service
from slotease.waitlist.schemas import AcceptedOffer, WaitlistEntry, WaitlistJoin

router = APIRouter(tags=["waitlist"])


@router.post(
    "/waitlist",
    status_code=201,
    responses={409: {"description": "Not a full slot of the service, or already waiting."}},
)
async def join_waitlist(body: WaitlistJoin, _: CurrentUser, conn: DbDep) -> WaitlistEntry:
    return await service.join(conn, body)


@router.get("/waitlist")
async def list_waitlist(
    _: CurrentUser,
    conn: DbDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[WaitlistEntry]:
    return await service.list_own(conn, cursor, limit)


@router.delete("/waitlist/{entry_id}", status_code=204)
async def leave_waitlist(entry_id: UUID, user: CurrentUser, conn: DbDep) -> Response:
    await service.leave(conn, user, entry_id)
    return Response(status_code=204)


@router.post(
    "/waitlist/{entry_id}/accept",
    status_code=201,
    response_model=AcceptedOffer,
    responses={409: {"description": "No live offer, or the place was taken first."}},
)
async def accept_offer(
    entry_id: UUID, user: CurrentUser, conn: DbDep
) -> AcceptedOffer | JSONResponse:
    outcome = await service.accept(conn, user, entry_id)
    # A refusal is answered without raising: the expiry or loss of the offer it reports is
    # committed with this request.
    return outcome if isinstance(outcome, AcceptedOffer) else outcome.response()
