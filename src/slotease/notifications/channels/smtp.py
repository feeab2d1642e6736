"""Email over SMTP (aiosmtplib): the default email channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

import aiosmtplib

from slotease.notifications.channels.base import (
    Channel,
    Message,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
)


def build_content(message: Message, sender: str) -> bytes:
    """The email as sent, but for the headers naming its recipient and its id (`envelope`
    adds them): the same bytes for every recipient of one content, built once per run of
    them since the email package's parsing and flattening cost milliseconds a message."""
    email = EmailMessage()
    email["From"] = sender
    email["Subject"] = message.subject
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
    content: bytes = email.as_bytes(policy=policy.SMTP)
    return content


def envelope(to: str, message_id: str) -> bytes:
    """The headers that differ for each recipient."""
    headers: str = policy.SMTP.fold("To", to) + policy.SMTP.fold("Message-ID", message_id)
    return headers.encode()


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
        async with self.session() as session:
            return await session.send(message)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SmtpSession]:
        session = SmtpSession(self)
        try:
            yield session
        finally:
            await session.close()


class SmtpSession:
    """One SMTP connection for many messages: opened on the first, kept for the next ones,
    opened again after a lost connection. A refused message leaves the connection usable
    (aiosmtplib answers it with RSET), so only that message fails."""

    def __init__(self, provider: SmtpProvider) -> None:
        self.provider = provider
        self.client: aiosmtplib.SMTP | None = None
        self.address = parseaddr(provider.sender)[1]
        self.domain = self.address.rsplit("@", 1)[-1]
        # The last content sent and its bytes: a bulk send's recipients all share one.
        self.last_content: tuple[tuple[object, ...], bytes] | None = None

    async def send(self, message: Message) -> Receipt:
        message_id = make_msgid(domain=self.domain)
        data = envelope(message.to, message_id) + self._content(message)
        reused = self.client is not None and self.client.is_connected
        try:
            try:
                await self._send(message.to, data)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed the connection while it sat idle: one fresh try.
                await self._send(message.to, data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # A 4xx to RCPT ("mailbox busy", greylisting) is a delay, not a refusal.
            delayed = all(refusal.code < 500 for refusal in exc.recipients)
            error = TransientDeliveryError if delayed else PermanentDeliveryError
            raise error(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing the connection
                await self.close()
            # 5xx is a final answer; 4xx means "try again later" in SMTP.
            error = PermanentDeliveryError if exc.code >= 500 else TransientDeliveryError
            raise error(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            raise TransientDeliveryError(f"SMTP: {exc}") from exc
        return Receipt(provider=self.provider.name, message_id=message_id)

    def _content(self, message: Message) -> bytes:
        key = (message.subject, message.text, message.html, message.attachments)
        if self.last_content is None or self.last_content[0] != key:
            self.last_content = (key, build_content(message, self.provider.sender))
        return self.last_content[1]

    async def _send(self, to: str, data: bytes) -> None:
        if self.client is None or not self.client.is_connected:
            provider = self.provider
            self.client = aiosmtplib.SMTP(
                hostname=provider.host,
                port=provider.port,
                username=provider.username,
                password=provider.password,
                start_tls=provider.starttls,
                timeout=provider.timeout,
            )
            await self.client.connect()
        await self.client.sendmail(self.address, [to], data)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
