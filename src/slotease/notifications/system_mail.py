"""Emails the system sends on its own account (invitations, account links): rendered from
its templates, sent by the worker straight to one address, outside the notifications table
since they concern an address rather than a user's messages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from slotease.jobs.retry import PermanentJobError
from slotease.notifications.channels.base import DeliveryError, Message
from slotease.notifications.channels.registry import not_configured_reason
from slotease.notifications.delivery import Deliverer

log = logging.getLogger(__name__)


def link_with_token(public_url: str, path: str, token: str) -> str:
    """A link under SLOTEASE_PUBLIC_URL carrying its single-use token as `token`."""
    return f"{public_url.rstrip('/')}/{path.lstrip('/')}?{urlencode({'token': token})}"


def email_day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%d %B %Y, %H:%M UTC")


async def send_system_email(
    deliverer: Deliverer, *, to: str, template: str, context: dict[str, Any], what: str
) -> None:
    """Send `template` to `to`; `what` names the email in logs and errors. A transient failure
    raises for the job to run again; a permanent one ends the job."""
    provider = deliverer.providers.get("email")
    if provider is None:
        log.warning("%s not emailed: %s", what, not_configured_reason("email"))
        return
    rendered = deliverer.templates.render(template, None, context)
    message = Message(to=to, subject=rendered.subject, text=rendered.text, html=rendered.html)
    try:
        await deliverer.breaker.call(provider.name, lambda: provider.send(message))
    except DeliveryError as exc:
        if exc.transient:
            raise
        raise PermanentJobError(f"{what} not emailed: {exc}") from exc
