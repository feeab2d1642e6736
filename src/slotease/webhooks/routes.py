"""HTTP routes of webhooks and their delivery log."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status

from slotease.auth.deps import ContextDep, DbDep, SignedIn
from slotease.kit.openapi import ADMIN_ONLY
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.webhooks import service
from slotease.webhooks.schemas import (
    Delivery,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(tags=["webhooks"])


# Dependencies declared before DbDep, so the URL is checked (DNS included) before the
# request's transaction opens.
async def _new_url(body: WebhookCreate, context: ContextDep) -> service.SafeUrl:
    return await service.safe_url(body.url, context.settings)


async def _changed_url(body: WebhookUpdate, context: ContextDep) -> service.SafeUrl | None:
    return None if body.url is None else await service.safe_url(body.url, context.settings)


@router.post(
    "/organizations/{org_id}/webhooks", status_code=status.HTTP_201_CREATED, responses=ADMIN_ONLY
)
async def create_webhook(
    org_id: UUID,
    body: WebhookCreate,
    _: SignedIn,
    url: Annotated[service.SafeUrl, Depends(_new_url)],
    conn: DbDep,
) -> WebhookCreated:
    return await service.create_webhook(conn, org_id, body, url)


@router.get("/organizations/{org_id}/webhooks", responses=ADMIN_ONLY)
async def list_webhooks(
    org_id: UUID,
    _: SignedIn,
    conn: DbDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[WebhookOut]:
    return await service.list_webhooks(conn, org_id, cursor=cursor, limit=limit)


@router.patch("/webhooks/{webhook_id}", responses=ADMIN_ONLY)
async def update_webhook(
    webhook_id: UUID,
    body: WebhookUpdate,
    _: SignedIn,
    url: Annotated[service.SafeUrl | None, Depends(_changed_url)],
    conn: DbDep,
) -> WebhookOut:
    return await service.update_webhook(conn, webhook_id, body, url)


@router.delete(
    "/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ADMIN_ONLY
)
async def delete_webhook(webhook_id: UUID, _: SignedIn, conn: DbDep) -> Response:
    await service.delete_webhook(conn, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    status_code=status.HTTP_201_CREATED,
    responses=ADMIN_ONLY,
)
async def rotate_secret(
    webhook_id: UUID, _: SignedIn, conn: DbDep, context: ContextDep
) -> SecretRotated:
    return await service.rotate_secret(conn, context.settings, webhook_id)


@router.get("/organizations/{org_id}/webhooks/{webhook_id}/deliveries", responses=ADMIN_ONLY)
async def list_deliveries(
    org_id: UUID,
    webhook_id: UUID,
    _: SignedIn,
    conn: DbDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Page[Delivery]:
    return await service.list_deliveries(conn, org_id, webhook_id, cursor=cursor, limit=limit)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    responses=ADMIN_ONLY,
)
async def redeliver(webhook_id: UUID, delivery_id: UUID, _: SignedIn, conn: DbDep) -> Delivery:
    return await service.redeliver(conn, webhook_id, delivery_id)
