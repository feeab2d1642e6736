"""Notification rules: who may send to whom, preferences, the recipient's list."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from slotease.auth.principal import Principal
from slotease.db.database import Connection
from slotease.kit.events import emit
from slotease.kit.pagination import (
    Page,
    cursor_key,
    model_page,
    timestamp_key,
)
from slotease.kit.problems import Forbidden, NotFound, Unprocessable
from slotease.notifications import repository as repo
from slotease.notifications.delivery import (
    BULK_QUEUE,
    created_event,
    enqueue_delivery,
    settle_in_app,
)
from slotease.notifications.schemas import (
    BulkRequest,
    BulkSent,
    Notification,
    Preferences,
    Read,
    SendRequest,
    Sent,
)
from slotease.notifications.templates import Templates
from slotease.organizations.access import is_super_admin, require_admin

# One delivery job per this many notifications: big sends spread over the workers, and a
# retry re-reads only its own batch.
BATCH_SIZE = 500
_templates = Templates()


async def get_preferences(conn: Connection, principal: Principal) -> Preferences:
    assert principal.user_id is not None
    row = await repo.get_preferences(conn, principal.user_id)
    return Preferences.model_validate(row) if row else Preferences()


async def put_preferences(conn: Connection, principal: Principal, body: Preferences) -> Preferences:
    assert principal.user_id is not None
    row = await repo.put_preferences(conn, principal.user_id, body.model_dump(mode="json"))
    return Preferences.model_validate(row)


async def send(conn: Connection, body: SendRequest) -> Sent:
    if body.template is not None and not _templates.exists(body.template):
        raise Unprocessable(f"There is no template {body.template!r}.")
    organizations = await repo.organizations_dealing_with(conn, body.user_id)
    if body.organization_id is not None:
        if body.organization_id not in organizations and not await is_super_admin(conn):
            raise NotFound("No such user in this organization.")
        organization_id: UUID | None = body.organization_id
    elif organizations:
        organization_id = organizations[0]
    elif await is_super_admin(conn):
        organization_id = None
    else:
        raise NotFound("No such user in your organizations.")
    # Without an organization the sender is a super admin, who may send urgent messages.
    if body.urgent and organization_id is not None:
        await require_admin(
            conn,
            organization_id,
            "Only the organization's admins may send urgent messages.",
            private=True,
        )
    data: dict[str, Any] = {"urgent": body.urgent, "context": body.data}
    rows = [
        _row(organization_id, body.user_id, channel, body.template, body.subject,
             body.body, data, None)
        for channel in dict.fromkeys(body.channels)
    ]  # fmt: skip
    await repo.insert_notifications(conn, rows)
    await _deliver_in_app(conn, [row["id"] for row in rows if row["channel"] == "in_app"])
    outside = [row["id"] for row in rows if row["channel"] != "in_app"]
    if outside:
        await enqueue_delivery(conn, outside)
    return Sent(
        id=rows[0]["id"],
        notifications=[{"id": row["id"], "channel": row["channel"]} for row in rows],
    )


async def _deliver_in_app(conn: Connection, ids: list[UUID]) -> None:
    """In-app messages need no provider: they are delivered in the sender's transaction and
    reach the recipient's `user:` topic once it commits, whether or not a worker runs."""
    if not ids:
        return
    for row in await repo.in_app_to_deliver(conn, ids):
        outcome = settle_in_app(_templates, row)
        rendered = outcome.rendered
        await repo.record_in_app(
            conn,
            row["id"],
            status=outcome.status,
            subject=rendered.subject if rendered else None,
            body=rendered.text if rendered else None,
            error=outcome.error,
        )
        if outcome.status == "delivered" and rendered is not None:
            emit(created_event(row, rendered))


async def send_bulk(conn: Connection, body: BulkRequest) -> BulkSent:
    # Its people are what the organization shows only to its members: 404 to anyone else.
    await require_admin(
        conn,
        body.organization_id,
        "Only the organization's admins may send in bulk.",
        private=True,
    )
    if body.audience is not None:
        recipients = await repo.audience(
            conn, body.organization_id, body.audience.date, body.audience.service_id
        )
    else:
        recipients = list(dict.fromkeys(body.user_ids or []))
        if len(await repo.people_of(conn, body.organization_id, recipients)) < len(recipients):
            raise NotFound("No such user in this organization.")
    batch_id = uuid4()
    # `bulk`: delivery asks for the recipient's marketing consent (see delivery.Deliverer).
    data: dict[str, Any] = {"urgent": False, "context": {}, "bulk": True}
    rows = [
        _row(body.organization_id, user_id, channel, None, body.subject, body.body,
             data, batch_id)
        for user_id in recipients
        for channel in dict.fromkeys(body.channels)
    ]  # fmt: skip
    for start in range(0, len(rows), BATCH_SIZE):
        chunk = rows[start : start + BATCH_SIZE]
        await repo.insert_notifications(conn, chunk)
        await enqueue_delivery(conn, [row["id"] for row in chunk], queue=BULK_QUEUE)
    return BulkSent(batch_id=batch_id, count=len(rows))


async def list_for_user(
    conn: Connection,
    principal: Principal,
    user_id: UUID,
    *,
    unread: bool,
    cursor: str | None,
    limit: int,
) -> Page[Notification]:
    if principal.user_id != user_id and not await is_super_admin(conn):
        raise NotFound("No such user.")
    after = cursor_key(cursor, timestamp_key)
    rows = await repo.list_for_user(conn, user_id, unread=unread, after=after, limit=limit + 1)
    return model_page(Notification, rows, limit, ["created_at", "id"])


async def mark_read(conn: Connection, notification_id: UUID) -> Read:
    row = await repo.mark_read(conn, notification_id)
    if row is None:
        if await repo.is_visible(conn, notification_id):
            raise Forbidden("Only the recipient may mark a notification read.")
        raise NotFound("No such notification.")
    return Read.model_validate(row)


def _row(
    organization_id: UUID | None,
    user_id: UUID,
    channel: str,
    template: str | None,
    subject: str | None,
    body: str | None,
    data: dict[str, Any],
    batch_id: UUID | None,
) -> dict[str, Any]:
    return {
        "id": uuid4(),
        "organization_id": organization_id,
        "user_id": user_id,
        "channel": channel,
        "template": template,
        "subject": subject,
        "body": body,
        "data": data,
        "batch_id": batch_id,
    }
