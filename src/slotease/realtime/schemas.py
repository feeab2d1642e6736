"""The messages a WebSocket client sends."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Subscribe(_ClientMessage):
    type: Literal["subscribe"]
    topic: str = Field(max_length=100)
    since_seq: int | None = Field(default=None, ge=0)


class Unsubscribe(_ClientMessage):
    type: Literal["unsubscribe"]
    topic: str = Field(max_length=100)


class Ping(_ClientMessage):
    type: Literal["ping"]


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
client_message: TypeAdapter[Subscribe | Unsubscribe | Ping] = TypeAdapter(ClientMessage)
