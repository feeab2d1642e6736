"""`GET /v1/realtime`: one WebSocket per client, carrying every topic it subscribes to."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from slotease.auth.principal import Principal, resolve_principal
from slotease.context import AppContext, app_context
from slotease.kit.problems import Unauthorized
from slotease.realtime import service
from slotease.realtime.hub import TRY_AGAIN_LATER, Subscriber
from slotease.realtime.schemas import Ping, Subscribe, client_message
from slotease.realtime.topics import parse_topic

router = APIRouter(tags=["realtime"])

# Close code for credentials that are present but bad (the WebSocket analogue of a 401).
INVALID_CREDENTIALS = 4401
MAX_TOPICS_PER_CONNECTION = 100
PONG = json.dumps({"type": "pong"})


def error_frame(topic: str | None, reason: str) -> str:
    return json.dumps({"type": "error", "topic": topic, "reason": reason})


@router.websocket("/realtime")
async def realtime(websocket: WebSocket) -> None:
    context = app_context(websocket)
    await websocket.accept()
    try:
        principal = resolve_principal(
            websocket, context.jwt_secret, context.settings.accepted_jwt_issuers
        )
    except Unauthorized as exc:
        await websocket.close(code=INVALID_CREDENTIALS, reason=exc.detail)
        return
    subscriber = context.realtime.hub.connect()
    sender = asyncio.create_task(_send_frames(websocket, subscriber))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text") or (message.get("bytes") or b"").decode(errors="replace")
            await _handle(context, principal, subscriber, text)
    finally:
        context.realtime.hub.disconnect(subscriber)
        sender.cancel()


async def _send_frames(websocket: WebSocket, subscriber: Subscriber) -> None:
    """The connection's only writer: drains its send queue, so a slow socket blocks no one
    else; closes the connection when the hub gave up on it."""
    try:
        while (frame := await subscriber.queue.get()) is not None:
            await websocket.send_text(frame)
            subscriber.sent()
        await websocket.close(code=TRY_AGAIN_LATER, reason="too slow; reconnect and resync")
    except (WebSocketDisconnect, RuntimeError):
        # The client left; the receive loop sees the disconnect and cleans up.
        return


async def _handle(
    context: AppContext, principal: Principal, subscriber: Subscriber, text: str
) -> None:
    hub = context.realtime.hub
    try:
        message = client_message.validate_json(text)
    except ValidationError:
        hub.offer(subscriber, error_frame(None, "bad_request"))
        return
    if isinstance(message, Ping):
        hub.offer(subscriber, PONG)
        return
    topic = parse_topic(message.topic)
    if topic is None:
        hub.offer(subscriber, error_frame(message.topic, "bad_request"))
        return
    name = str(topic)
    if not isinstance(message, Subscribe):
        hub.unsubscribe(subscriber, name)
        return
    if name not in subscriber.topics and len(subscriber.topics) >= MAX_TOPICS_PER_CONNECTION:
        hub.offer(subscriber, error_frame(name, "bad_request"))
        return
    refusal = await service.refusal_for(context.db, principal.identity, topic)
    if refusal is not None:
        hub.offer(subscriber, error_frame(name, refusal))
        return
    hub.subscribe(subscriber, name)
    if message.since_seq is not None:
        current = hub.known_seq(name)
        if current is None:
            current = await context.realtime.current_seq(name)
        hub.catch_up(subscriber, name, message.since_seq, current)
