"""Email through SendGrid's v3 Mail Send API."""

from __future__ import annotations

import base64
from email.utils import parseaddr

import httpx

from slotease.notifications.channels.base import Channel, Message, Receipt
from slotease.notifications.channels.http import post


class SendGridProvider:
    name = "sendgrid"
    channel: Channel = "email"

    def __init__(
        self, client: httpx.AsyncClient, *, api_key: str, base_url: str, sender: str
    ) -> None:
        self.client = client
        self.api_key = api_key
        self.url = base_url.rstrip("/") + "/v3/mail/send"
        name, address = parseaddr(sender)
        self.sender = {"email": address, **({"name": name} if name else {})}

    async def send(self, message: Message) -> Receipt:
        content = [{"type": "text/plain", "value": message.text}]
        if message.html is not None:
            content.append({"type": "text/html", "value": message.html})
        body: dict[str, object] = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": self.sender,
            "subject": message.subject,
            "content": content,
        }
        if message.attachments:
            body["attachments"] = [
                {
                    "content": base64.b64encode(a.content).decode(),
                    "type": a.content_type.split(";")[0],
                    "filename": a.filename,
                    "disposition": "attachment",
                }
                for a in message.attachments
            ]
        response = await post(
            self.client, self.url, json=body, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        return Receipt(provider=self.name, message_id=response.headers.get("X-Message-Id"))
