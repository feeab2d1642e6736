"""The accounts' jobs: mailing a password-reset or verification link."""

from __future__ import annotations

from uuid import UUID

from procrastinate import Blueprint

from slotease.auth import account_mail
from slotease.jobs import runtime
from slotease.jobs.retry import RETRY
from slotease.notifications.delivery import Deliverer

blueprint = Blueprint()


async def _send(task: str, token_id: str, token: str) -> None:
    rt = runtime.current()
    await account_mail.send_account_mail(
        rt.db, rt.settings, rt.resource(Deliverer), task, UUID(token_id), token
    )


@blueprint.task(name=account_mail.RESET_TASK, retry=RETRY)
async def send_password_reset(token_id: str, token: str) -> None:
    await _send(account_mail.RESET_TASK, token_id, token)


@blueprint.task(name=account_mail.VERIFICATION_TASK, retry=RETRY)
async def send_verification(token_id: str, token: str) -> None:
    await _send(account_mail.VERIFICATION_TASK, token_id, token)
