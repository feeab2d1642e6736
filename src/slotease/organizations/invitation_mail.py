"""The email that carries an invitation's link: enqueued in the transaction that makes the
invitation, sent by the worker.

The link's token is known only to the job until the email goes out; the database keeps its
hash. The worker re-reads the invitation first, so a revoked, accepted or expired one sends
nothing."""

from __future__ import annotations

from uuid import UUID

from slotease.config import Settings
from slotease.db.database import SERVICE, Connection, Database
from slotease.jobs import repository as jobs_repo
from slotease.notifications.delivery import NOTIFICATIONS_QUEUE, Deliverer
from slotease.notifications.system_mail import email_day, link_with_token, send_system_email
from slotease.organizations import repository

INVITATION_TASK = "organizations.send_invitation"
INVITATION_TEMPLATE = "invitation"


async def enqueue_invitation_mail(
    conn: Connection, invitation_id: UUID, org_id: UUID, token: str
) -> int:
    args = {"invitation_id": str(invitation_id), "organization_id": str(org_id), "token": token}
    return await jobs_repo.enqueue(conn, INVITATION_TASK, args, queue=NOTIFICATIONS_QUEUE)


def invitation_link(public_url: str, invitation_id: UUID, token: str) -> str:
    return link_with_token(public_url, f"invitations/{invitation_id}", token)


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
    await send_system_email(
        deliverer,
        to=row["email"],
        template=INVITATION_TEMPLATE,
        context={
            "organization": row["organization"],
            "role": row["role"],
            "link": invitation_link(settings.public_url, invitation_id, token),
            "expires_at": email_day(row["expires_at"]),
        },
        what=f"invitation {invitation_id}",
    )
