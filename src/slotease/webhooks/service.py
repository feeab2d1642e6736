"""The rules of webhooks: admins manage them, URLs pass the SSRF guard, secrets are shown once."""

from __future__ import annotations

from typing import NewType
from uuid import UUID

from slotease.config import Settings
from slotease.db.database import Connection
from slotease.db.queries import Row
from slotease.kit.pagination import Page, cursor_key, page_of, timestamp_key
from slotease.kit.problems import Forbidden, NotFound, Unprocessable
from slotease.organizations.access import ADMINS_ONLY, require_admin
from slotease.webhooks import repository as repo
from slotease.webhooks.delivery import enqueue_attempt
from slotease.webhooks.schemas import (
    Delivery,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)
from slotease.webhooks.signing import new_webhook_secret
from slotease.webhooks.ssrf import UnsafeUrl, target

# A URL that passed the SSRF guard; the only way to save one.
SafeUrl = NewType("SafeUrl", str)


async def safe_url(url: str, settings: Settings) -> SafeUrl:
    """The URL, once its host resolved to public addresses only. A lookup can take seconds, so
    it runs before the request's transaction opens: no connection waits on DNS."""
    try:
        await target(url, allow_private=settings.allow_private_webhooks)
    except UnsafeUrl as exc:
        raise Unprocessable(str(exc)) from None
    return SafeUrl(url)


async def _visible_webhook(conn: Connection, webhook_id: UUID) -> Row:
    """Webhooks are visible to their organization's admins only: anyone else gets a 404."""
    row = await repo.get_webhook(conn, webhook_id)
    if row is None:
        raise NotFound("No such webhook.")
    return row


async def create_webhook(
    conn: Connection, org_id: UUID, body: WebhookCreate, url: SafeUrl
) -> WebhookCreated:
    await require_admin(conn, org_id)
    secret = new_webhook_secret()
    row = await repo.insert_webhook(conn, org_id, url, list(body.events), secret)
    return WebhookCreated.model_validate({**row, "secret": secret})


async def list_webhooks(
    conn: Connection, org_id: UUID, *, cursor: str | None, limit: int
) -> Page[WebhookOut]:
    await require_admin(conn, org_id)
    rows = await repo.list_webhooks(
        conn, org_id, after=cursor_key(cursor, timestamp_key), limit=limit
    )
    items, next_cursor = page_of(rows, limit, key=["created_at", "id"])
    return Page(items=[WebhookOut.model_validate(row) for row in items], next_cursor=next_cursor)


async def update_webhook(
    conn: Connection, webhook_id: UUID, body: WebhookUpdate, url: SafeUrl | None
) -> WebhookOut:
    await _visible_webhook(conn, webhook_id)
    columns = body.model_dump(exclude_none=True, exclude={"url"})
    if url is not None:
        columns["url"] = url
    row = await repo.update_webhook(conn, webhook_id, columns)
    if row is None:
        raise Forbidden(ADMINS_ONLY)
    return WebhookOut.model_validate(row)


async def delete_webhook(conn: Connection, webhook_id: UUID) -> None:
    await _visible_webhook(conn, webhook_id)
    if not await repo.delete_webhook(conn, webhook_id):
        raise Forbidden(ADMINS_ONLY)


async def rotate_secret(conn: Connection, settings: Settings, webhook_id: UUID) -> SecretRotated:
    """A new secret; the replaced one keeps signing beside it for the overlap, so receivers can
    switch over without rejecting a delivery."""
    await _visible_webhook(conn, webhook_id)
    secret = new_webhook_secret()
    row = await repo.rotate_secret(conn, webhook_id, secret, settings.webhook_secret_overlap_hours)
    if row is None:
        raise Forbidden(ADMINS_ONLY)
    return SecretRotated.model_validate({**row, "secret": secret})


async def list_deliveries(
    conn: Connection, org_id: UUID, webhook_id: UUID, *, cursor: str | None, limit: int
) -> Page[Delivery]:
    await require_admin(conn, org_id)
    webhook = await repo.get_webhook(conn, webhook_id)
    if webhook is None or webhook["organization_id"] != org_id:
        raise NotFound("No such webhook.")
    rows = await repo.list_deliveries(
        conn, webhook_id, after=cursor_key(cursor, timestamp_key), limit=limit
    )
    items, next_cursor = page_of(rows, limit, key=["created_at", "id"])
    return Page(items=[Delivery.model_validate(row) for row in items], next_cursor=next_cursor)


async def redeliver(conn: Connection, webhook_id: UUID, delivery_id: UUID) -> Delivery:
    """A new attempt of the delivery now, in place of any attempt waiting for its turn."""
    delivery = await repo.get_delivery(conn, webhook_id, delivery_id)
    if delivery is None:
        raise NotFound("No such delivery.")
    await repo.reopen_delivery(conn, delivery_id)
    await enqueue_attempt(conn, delivery_id)
    reopened = await repo.get_delivery(conn, webhook_id, delivery_id)
    assert reopened is not None
    return Delivery.model_validate(reopened)
