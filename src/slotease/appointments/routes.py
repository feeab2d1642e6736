"""HTTP routes of availability, appointments, feedback and ratings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from slotease.appointments import service
from slotease.appointments.schemas import (
    Appointment,
    AppointmentCreate,
    AppointmentFilters,
    AppointmentUpdate,
    AvailableSlots,
    CalendarToken,
    Feedback,
    FeedbackCreate,
    Ratings,
)
from slotease.auth.deps import (
    ContextDep,
    CurrentUser,
    DbDep,
    PrincipalDep,
    ReadDatabaseDep,
    ReadDbDep,
    SignedIn,
    caller_transaction,
)
from slotease.db.database import ANONYMOUS, Connection, DbIdentity
from slotease.kit.cache import Cache, make_cache
from slotease.kit.pagination import Page

router = APIRouter(tags=["appointments"])


async def slot_cache(request: Request, context: ContextDep) -> Cache:
    """One cache per app, on the app's shared Redis client when there is one."""
    cache: Cache | None = getattr(request.app.state, "slot_cache", None)
    if cache is None:
        cache = make_cache(context.redis)
        request.app.state.slot_cache = cache
    return cache


CacheDep = Annotated[Cache, Depends(slot_cache)]
CALENDAR_TYPE = "text/calendar"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Repeat a booking safely: the same key and body get the first answer.",
    ),
]


@router.get("/available-slots", response_model=AvailableSlots)
async def available_slots(
    principal: PrincipalDep,
    context: ContextDep,
    cache: CacheDep,
    db: ReadDatabaseDep,
    service_id: UUID,
    from_day: Annotated[date, Query(alias="from", description="First local date, inclusive.")],
    to_day: Annotated[date, Query(alias="to", description="Last local date, inclusive.")],
) -> Response:
    # The most frequent read of the product: a cached answer is sent as stored, after one
    # read of the service's availability version and without a transaction; only a miss
    # opens one, as the caller. A replica may answer: the version it holds keys what it computes.
    question = await service.slots_request(db, service_id, from_day, to_day)
    if not principal.is_api_key:
        cached = await service.cached_slots_json(cache, question)
        if cached is not None:
            return Response(cached, media_type="application/json")
    # A miss, or an API key, which the database must accept before anything is served.
    async with caller_transaction(context, principal, db) as conn:
        body = await service.cached_slots_json(cache, question)
        if body is None:
            body = await service.compute_slots_json(conn, cache, question)
    return Response(body, media_type="application/json")


@router.post(
    "/appointments",
    status_code=201,
    response_model=Appointment,
    responses={409: {"description": "The slot is full or not offered."}},
)
async def book_appointment(
    body: AppointmentCreate,
    request: Request,
    principal: SignedIn,
    conn: DbDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    status, answer = await service.book(
        conn,
        principal,
        body,
        idempotency_key=idempotency_key,
        method=request.method,
        path=request.url.path,
    )
    return JSONResponse(answer, status_code=status)


@router.get("/appointments")
async def list_appointments(
    principal: SignedIn, conn: DbDep, filters: Annotated[AppointmentFilters, Query()]
) -> Page[Appointment]:
    return await service.list_appointments(conn, principal, filters)


@router.get(
    "/appointments/{appointment_id}.ics",
    response_class=Response,
    responses={200: {"content": {CALENDAR_TYPE: {}}, "description": "An iCalendar event."}},
)
async def appointment_calendar(appointment_id: UUID, _: SignedIn, conn: DbDep) -> Response:
    return _calendar_response(await service.appointment_calendar(conn, appointment_id))


@router.get("/appointments/{appointment_id}")
async def get_appointment(appointment_id: UUID, _: SignedIn, conn: DbDep) -> Appointment:
    return await service.get_appointment(conn, appointment_id)


@router.put("/appointments/{appointment_id}")
async def update_appointment(
    appointment_id: UUID,
    body: AppointmentUpdate,
    _: SignedIn,
    conn: DbDep,
) -> Appointment:
    return await service.update_appointment(conn, appointment_id, body)


@router.delete("/appointments/{appointment_id}")
async def cancel_appointment(appointment_id: UUID, _: SignedIn, conn: DbDep) -> Appointment:
    return await service.cancel_appointment(conn, appointment_id)


@router.post("/appointments/{appointment_id}/feedback", status_code=201)
async def give_feedback(
    appointment_id: UUID, body: FeedbackCreate, user: CurrentUser, conn: DbDep
) -> Feedback:
    return await service.give_feedback(conn, user, appointment_id, body)


@router.get("/services/{service_id}/ratings")
async def service_ratings(service_id: UUID, conn: ReadDbDep) -> Ratings:
    return await service.ratings(conn, service_id)


def _calendar_response(body: bytes) -> Response:
    # Personal schedules: never kept by a shared cache.
    return Response(body, media_type=CALENDAR_TYPE, headers={"Cache-Control": "private, no-store"})


@router.post("/me/calendar-token", status_code=201)
async def issue_calendar_token(request: Request, _: CurrentUser, conn: DbDep) -> CalendarToken:
    token = await service.issue_calendar_token(conn)
    url = request.url_for("calendar_feed").include_query_params(token=token)
    return CalendarToken(url=str(url), token=token)


@router.delete("/me/calendar-token", status_code=204)
async def revoke_calendar_token(_: CurrentUser, conn: DbDep) -> Response:
    await service.revoke_calendar_token(conn)
    return Response(status_code=204)


async def feed_session(
    token: Annotated[str, Query(min_length=1, max_length=200, description="The feed token.")],
    context: ContextDep,
) -> AsyncIterator[Connection]:
    """Calendar apps send no headers: the token names the user, and the feed is then read in
    a transaction acting as that user, so row-level security decides what it holds."""
    async with context.db.transaction(ANONYMOUS) as conn:
        user_id = await service.calendar_feed_owner(conn, token)
    identity = DbIdentity(
        role="authenticated", claims={"sub": str(user_id), "role": "authenticated"}
    )
    async with context.db.transaction(identity) as conn:
        yield conn


@router.get(
    "/me/calendar.ics",
    name="calendar_feed",
    response_class=Response,
    responses={200: {"content": {CALENDAR_TYPE: {}}, "description": "An iCalendar feed."}},
)
async def calendar_feed(
    conn: Annotated[Connection, Depends(feed_session, scope="function")],
) -> Response:
    return _calendar_response(await service.calendar_feed(conn))
