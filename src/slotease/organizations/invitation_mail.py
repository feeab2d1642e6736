"""The email that carries an invitation's link: enqueued in the transaction that makes the
invitation, sent by the worker.

The link's token is known only to the job until the email goes out; the database keeps its
hash. The worker re-reads the invitation first, so a revoked, accepted or expired one sends
nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlencode
from uuid import UUID

from slotease.config import Settings
from slotease.db.database import SERVICE, Connection, Database
from slotease.jobs import repository as jobs_repo
from slotease.jobs.retry import PermanentJobError
from slotease.notifications.channels.base import DeliveryError, Message
from slotease.notifications.channels.registry import not_configured_reason
from slotease.notifications.delivery import NOTIFICATIONS_QUEUE, Deliverer
from slotease.organizations import repository

log = logging.getLogger(__name__)

INVITATION_TASK = "organizations.send_invitation"
INVITATION_TEMPLATE = "invitation"


async def enqueue_invitation_mail(
    conn: Connection, invitation_id: UUID, org_id: UUID, token: str
) -> int:
    args = {"invitation_id": str(invitation_id), "organization_id": str(org_id), "token": token}
    return await jobs_repo.enqueue(conn, INVITATION_TASK, args, queue=NOTIFICATIONS_QUEUE)


def invitation_link(public_url: str, invitation_id: UUID, token: str) -> str:
    return f"{public_url.rstrip('/')}/invitations/{invitation_id}?{urlencode({'token': token})}"


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%d %B %Y, %H:%M UTC")


async def send_invitation(
    db: Database,
    settings: Settings,
    deliverer: Deliverer,
    invitation_id: UUID,
    org_id: UUID,
    token: str,
) -> None:
    async with db.transaction(SERVICE) as conn:
        row = await repository.invitation_to_mail(conn, invitation_id, org_id)
    if row is None:
        return
    provider = deliverer.providers.get("email")
    if provider is None:
        log.warning("invitation %s not emailed: %s", invitation_id, not_configured_reason("email"))
        return
    rendered = deliverer.templates.render(
        INVITATION_TEMPLATE,
        None,
        {
            "organization": row["organization"],
            "role": row["role"],
            "link": invitation_link(settings.public_url, invitation_id, token),
            "expires_at": _day(row["expires_at"]),
        },
    )
    message = Message(
        to=row["email"], subject=rendered.subject, text=rendered.text, html=rendered.html
    )
    try:
        await deliverer.breaker.call(provider.name, lambda: provider.send(message))
    except DeliveryError as exc:
        if exc.transient:
            raise
        raise PermanentJobError(f"invitation {invitation_id} not emailed: {exc}") from exc
