"""HTTP routes of availability, appointments, feedback and ratings."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from slotease.appointments import service
from slotease.appointments.schemas import (
    Appointment,
    AppointmentCreate,
    AppointmentFilters,
    AppointmentUpdate,
    AvailableSlots,
    Feedback,
    FeedbackCreate,
    Ratings,
)
from slotease.auth.deps import ContextDep, CurrentUser, DbDep, SignedIn
from slotease.kit.cache import Cache, make_cache
from slotease.kit.pagination import Page

router = APIRouter(tags=["appointments"])


def slot_cache(request: Request, context: ContextDep) -> Cache:
    """One cache per app, on the app's shared Redis client when there is one."""
    cache: Cache | None = getattr(request.app.state, "slot_cache", None)
    if cache is None:
        cache = make_cache(context.redis)
        request.app.state.slot_cache = cache
    return cache


CacheDep = Annotated[Cache, Depends(slot_cache)]
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
    db: DbDep,
    cache: CacheDep,
    service_id: UUID,
    from_day: Annotated[date, Query(alias="from", description="First local date, inclusive.")],
    to_day: Annotated[date, Query(alias="to", description="Last local date, inclusive.")],
) -> AvailableSlots:
    return await service.get_available_slots(db, cache, service_id, from_day, to_day)


@router.post(
    "/appointments",
    status_code=201,
    response_model=Appointment,
    responses={409: {"description": "The slot is full or not offered."}},
)
async def book_appointment(
    payload: AppointmentCreate,
    request: Request,
    principal: SignedIn,
    db: DbDep,
    cache: CacheDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    status, body = await service.book(
        db,
        cache,
        principal,
        payload,
        idempotency_key=idempotency_key,
        method=request.method,
        path=request.url.path,
    )
    return JSONResponse(body, status_code=status)


@router.get("/appointments", response_model=Page[Appointment])
async def list_appointments(
    principal: SignedIn, db: DbDep, filters: Annotated[AppointmentFilters, Query()]
) -> Page[Appointment]:
    return await service.list_appointments(db, principal, filters)


@router.get("/appointments/{appointment_id}", response_model=Appointment)
async def get_appointment(appointment_id: UUID, _: SignedIn, db: DbDep) -> Appointment:
    return await service.get_appointment(db, appointment_id)


@router.put("/appointments/{appointment_id}", response_model=Appointment)
async def update_appointment(
    appointment_id: UUID, payload: AppointmentUpdate, _: SignedIn, db: DbDep, cache: CacheDep
) -> Appointment:
    return await service.update_appointment(db, cache, appointment_id, payload)


@router.delete("/appointments/{appointment_id}", response_model=Appointment)
async def cancel_appointment(
    appointment_id: UUID, _: SignedIn, db: DbDep, cache: CacheDep
) -> Appointment:
    return await service.cancel_appointment(db, cache, appointment_id)


@router.post("/appointments/{appointment_id}/feedback", status_code=201, response_model=Feedback)
async def give_feedback(
    appointment_id: UUID, payload: FeedbackCreate, user: CurrentUser, db: DbDep
) -> Feedback:
    return await service.give_feedback(db, user, appointment_id, payload)


@router.get("/services/{service_id}/ratings", response_model=Ratings)
async def service_ratings(service_id: UUID, db: DbDep) -> Ratings:
    return await service.ratings(db, service_id)
