"""Push through Firebase Cloud Messaging's HTTP v1 API.

The bearer token is an OAuth 2 access token for the project's service account, minted and
refreshed outside the process (for instance by the platform's metadata server)."""

from __future__ import annotations

import httpx

from slotease.notifications.channels.base import Channel, Message, PermanentDeliveryError, Receipt
from slotease.notifications.channels.http import post


class FcmProvider:
    name = "fcm"
    channel: Channel = "push"

    def __init__(
        self, client: httpx.AsyncClient, *, project_id: str, access_token: str, base_url: str
    ) -> None:
        self.client = client
        self.access_token = access_token
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"

    async def send(self, message: Message) -> Receipt:
        body = {
            "message": {
                "token": message.to,
                "notification": {"title": message.subject, "body": message.text},
                # FCM data values must be strings.
                "data": {k: str(v) for k, v in message.data.items()},
            }
        }
        response = await post(
            self.client,
            self.url,
            json=body,
            headers={"Authorization": f"Bearer {self.access_token}"},
        )
        name = response.json().get("name")
        if not name:
            raise PermanentDeliveryError("FCM accepted the message without a name")
        return Receipt(provider=self.name, message_id=str(name))
