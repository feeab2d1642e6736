"""The organizations' job: mailing an invitation."""

from __future__ import annotations

from uuid import UUID

from procrastinate import Blueprint

from slotease.jobs import runtime
from slotease.jobs.retry import RETRY
from slotease.notifications.delivery import Deliverer
from slotease.organizations import invitation_mail

blueprint = Blueprint()


@blueprint.task(name=invitation_mail.INVITATION_TASK, retry=RETRY)
async def send_invitation(invitation_id: str, organization_id: str, token: str) -> None:
    rt = runtime.current()
    await invitation_mail.send_invitation(
        rt.db,
        rt.settings,
        rt.resource(Deliverer),
        UUID(invitation_id),
        UUID(organization_id),
        token,
    )
