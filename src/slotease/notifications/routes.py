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


@router.get("/me/notification-preferences")
async def get_preferences(conn: DbDep, user: CurrentUser) -> Preferences:
    return await service.get_preferences(conn, user)


@router.put("/me/notification-preferences")
async def put_preferences(conn: DbDep, user: CurrentUser, body: Preferences) -> Preferences:
    return await service.put_preferences(conn, user, body)


@router.post("/notifications/send", status_code=202)
async def send(conn: DbDep, _: CurrentUser, body: SendRequest) -> Sent:
    return await service.send(conn, body)


@router.post("/notifications/send-bulk", status_code=202)
async def send_bulk(conn: DbDep, _: CurrentUser, body: BulkRequest) -> BulkSent:
    return await service.send_bulk(conn, body)


@router.get("/notifications/user/{user_id}")
async def list_for_user(
    conn: DbDep,
    user: CurrentUser,
    user_id: UUID,
    unread: Annotated[bool, Query(description="Only unread in-app notifications.")] = False,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[Notification]:
    return await service.list_for_user(
        conn, user, user_id, unread=unread, cursor=cursor, limit=limit
    )


@router.put("/notifications/mark-read/{notification_id}")
async def mark_read(conn: DbDep, _: CurrentUser, notification_id: UUID) -> Read:
    return await service.mark_read(conn, notification_id)
