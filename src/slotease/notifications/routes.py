"""HTTP routes of notifications and notification preferences."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from slotease.auth.deps import CurrentUser, DbDep
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.notifications import service
from slotease.notifications.schemas import (
    BulkRequest,
    BulkSent,
    Notification,
    Preferences,
    Read,
    SendRequest,
    Sent,
)

router = APIRouter(tags=["notifications"])


@router.get("/me/notification-preferences", response_model=Preferences)
async def get_preferences(db: DbDep, user: CurrentUser) -> Preferences:
    return await service.get_preferences(db, user)


@router.put("/me/notification-preferences", response_model=Preferences)
async def put_preferences(db: DbDep, user: CurrentUser, body: Preferences) -> Preferences:
    return await service.put_preferences(db, user, body)


@router.post("/notifications/send", status_code=202, response_model=Sent)
async def send(db: DbDep, _: CurrentUser, body: SendRequest) -> Sent:
    return await service.send(db, body)


@router.post("/notifications/send-bulk", status_code=202, response_model=BulkSent)
async def send_bulk(db: DbDep, _: CurrentUser, body: BulkRequest) -> BulkSent:
    return await service.send_bulk(db, body)


@router.get("/notifications/user/{user_id}", response_model=Page[Notification])
async def list_for_user(
    db: DbDep,
    user: CurrentUser,
    user_id: UUID,
    unread: Annotated[bool, Query(description="Only unread in-app notifications.")] = False,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[Notification]:
    return await service.list_for_user(db, user, user_id, unread=unread, cursor=cursor, limit=limit)


@router.put("/notifications/mark-read/{notification_id}", response_model=Read)
async def mark_read(db: DbDep, _: CurrentUser, notification_id: UUID) -> Read:
    return await service.mark_read(db, notification_id)
