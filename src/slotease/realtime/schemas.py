"""The messages a WebSocket client sends."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

# The topics one connection may follow at once.
MAX_TOPICS_PER_CONNECTION = 100


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopicRequest(_ClientMessage):
    topic: str = Field(max_length=100)
    since_seq: int | None = Field(default=None, ge=0)


class Subscribe(_ClientMessage):
    """One topic (`topic`, `since_seq`) or several at once (`topics`), checked together."""

    type: Literal["subscribe"]
    topic: str | None = Field(default=None, max_length=100)
    since_seq: int | None = Field(default=None, ge=0)
    topics: list[TopicRequest] | None = Field(
        default=None, min_length=1, max_length=MAX_TOPICS_PER_CONNECTION
    )

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.topic is None) == (self.topics is None):
            raise ValueError("give either topic or topics")
        if self.topics is not None and self.since_seq is not None:
            raise ValueError("since_seq goes with each of topics")
        return self

    def requests(self) -> list[TopicRequest]:
        if self.topics is not None:
            return self.topics
        assert self.topic is not None
        return [TopicRequest(topic=self.topic, since_seq=self.since_seq)]


class Unsubscribe(_ClientMessage):
    type: Literal["unsubscribe"]
    topic: str = Field(max_length=100)


class Ping(_ClientMessage):
    type: Literal["ping"]


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
client_message: TypeAdapter[Subscribe | Unsubscribe | Ping] = TypeAdapter(ClientMessage)
