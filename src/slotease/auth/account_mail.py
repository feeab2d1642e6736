"""The emails of an account's own links, recovery and verification: enqueued in the
transaction that makes the token, sent by the worker.

As with invitations, the token is known only to the job until the email leaves; the database
keeps its hash. The worker reads the token's row again first, so a spent, replaced or expired
token sends nothing."""

from __future__ import annotations

from uuid import UUID

from slotease.auth import repository
from slotease.config import Settings
from slotease.db.database import SERVICE, Connection, Database
from slotease.jobs import repository as jobs_repo
from slotease.jobs.queues import INTERACTIVE
from slotease.notifications.delivery import Deliverer
from slotease.notifications.system_mail import email_day, link_with_token, send_system_email

RESET_TASK = "auth.send_password_reset"
VERIFICATION_TASK = "auth.send_verification"
# The web pages the links open (web/routes.py).
RESET_PATH = "reset-password"
VERIFY_PATH = "verify-email"

_MAILS = {
    RESET_TASK: ("password_reset", RESET_PATH, "password reset"),
    VERIFICATION_TASK: ("verify_email", VERIFY_PATH, "verification"),
}


async def enqueue_account_mail(conn: Connection, task: str, token_id: UUID, token: str) -> int:
    args = {"token_id": str(token_id), "token": token}
    return await jobs_repo.enqueue(conn, task, args, queue=INTERACTIVE)


async def send_account_mail(
    db: Database, settings: Settings, deliverer: Deliverer, task: str, token_id: UUID, token: str
) -> None:
    template, path, what = _MAILS[task]
    async with db.transaction(SERVICE) as conn:
        row = await repository.account_mail(conn, token_id)
    if row is None:
        return
    await send_system_email(
        deliverer,
        to=row["email"],
        template=template,
        context={
            "full_name": row["full_name"] or row["email"],
            "link": link_with_token(settings.public_url, path, token),
            "expires_at": email_day(row["expires_at"]),
        },
        what=f"{what} {token_id}",
    )
