"""SMS through Twilio's Programmable Messaging REST API."""

from __future__ import annotations

import httpx

from slotease.notifications.channels.base import Channel, Message, PermanentDeliveryError, Receipt
from slotease.notifications.channels.http import post


class TwilioProvider:
    name = "twilio"
    channel: Channel = "sms"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        base_url: str,
    ) -> None:
        self.client = client
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        self.sender = sender
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send(self, message: Message) -> Receipt:
        response = await post(
            self.client,
            self.url,
            data={"To": message.to, "From": self.sender, "Body": message.text},
            auth=self.auth,
        )
        sid = response.json().get("sid")
        if not sid:
            raise PermanentDeliveryError("Twilio accepted the message without a sid")
        return Receipt(provider=self.name, message_id=str(sid))
