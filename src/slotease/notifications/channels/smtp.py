"""Email over SMTP (aiosmtplib): the default email channel."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from slotease.notifications.channels.base import (
    Channel,
    Message,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
)


def build_email(message: Message, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> "))
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, rest = attachment.content_type.partition("/")
        subtype, _, params = rest.partition(";")
        email.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype.strip(),
            filename=attachment.filename,
            params=dict(_params(params)),
        )
    return email


def _params(text: str) -> list[tuple[str, str]]:
    pairs = (p.split("=", 1) for p in text.split(";") if "=" in p)
    return [(k.strip(), v.strip()) for k, v in pairs]


class SmtpProvider:
    name = "smtp"
    channel: Channel = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None,
        password: str | None,
        starttls: bool,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    async def send(self, message: Message) -> Receipt:
        email = build_email(message, self.sender)
        try:
            await aiosmtplib.send(
                email,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx is a final answer; 4xx means "try again later" in SMTP.
            error = PermanentDeliveryError if exc.code >= 500 else TransientDeliveryError
            raise error(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(f"SMTP: {exc}") from exc
        return Receipt(provider=self.name, message_id=email["Message-ID"])
