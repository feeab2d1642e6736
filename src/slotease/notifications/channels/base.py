"""What every provider receives and answers, and the two ways a delivery can fail."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Channel = Literal["email", "sms", "push", "in_app"]
EXTERNAL_CHANNELS: tuple[Channel, ...] = ("push", "sms", "email")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "text/calendar; method=PUBLISH"
    content: bytes


@dataclass(frozen=True)
class Message:
    to: str  # an email address, a phone number or a device token, by channel
    subject: str
    text: str
    html: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Receipt:
    provider: str
    message_id: str | None


class DeliveryError(Exception):
    """The provider did not take the message."""

    transient = False


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: a timeout, a 5xx, a 429, a refused connection."""

    transient = True


class PermanentDeliveryError(DeliveryError):
    """The provider refused the message itself (a 4xx): retrying sends the same refusal."""


class Provider(Protocol):
    name: str
    channel: Channel

    async def send(self, message: Message) -> Receipt: ...


class Sender(Protocol):
    async def send(self, message: Message) -> Receipt: ...


@runtime_checkable
class SessionProvider(Protocol):
    """A provider whose messages are cheaper sent over one open session (one SMTP
    connection) than one connection each; a delivery job sends all its messages over one."""

    def session(self) -> AbstractAsyncContextManager[Sender]: ...
