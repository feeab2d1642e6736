"""`GET /v1/realtime`: one WebSocket per client, carrying every topic it subscribes to."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import psycopg
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from slotease.auth.principal import Principal, resolve_principal
from slotease.context import AppContext, app_context
from slotease.kit.problems import TooManyRequests, Unauthorized
from slotease.realtime import service
from slotease.realtime.hub import TRY_AGAIN_LATER, Subscriber, error_frame
from slotease.realtime.limits import (
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    MessageBudget,
    message_text,
)
from slotease.realtime.schemas import MAX_TOPICS_PER_CONNECTION, Ping, Subscribe, client_message
from slotease.realtime.topics import Topic, parse_topic
from slotease.realtime.transport import DirectWriter, frame_socket, send_frames

router = APIRouter(tags=["realtime"])
log = logging.getLogger(__name__)

# Close code for credentials that are present but bad, or that expired while connected (the
# WebSocket analogue of a 401).
INVALID_CREDENTIALS = 4401
PONG = json.dumps({"type": "pong"})


@router.websocket("/realtime")
async def realtime(websocket: WebSocket) -> None:
    context = app_context(websocket)
    # Put there by the rate-limit middleware, which counted this upgrade request.
    address: str = websocket.state.client_ip
    connection_id = uuid.uuid4().hex
    if not await context.realtime.open_connection(address, connection_id):
        limit = context.realtime.connections_per_address
        refusal = TooManyRequests(f"This address already holds {limit} live connections.")
        await websocket.send_denial_response(refusal.response())
        return
    try:
        await websocket.accept()
        try:
            principal = resolve_principal(
                websocket, context.jwt_secret, context.settings.accepted_jwt_issuers
            )
        except Unauthorized as exc:
            await websocket.close(code=INVALID_CREDENTIALS, reason=exc.detail)
            return
        await _serve(websocket, context, principal)
    finally:
        await context.realtime.close_connection(address, connection_id)


async def _serve(websocket: WebSocket, context: AppContext, principal: Principal) -> None:
    settings = context.settings
    hub = context.realtime.hub
    subscriber = hub.connect()
    budget = MessageBudget(settings.realtime_messages_per_second, settings.realtime_message_burst)
    socket = frame_socket(websocket)
    writer = DirectWriter(websocket, socket, subscriber) if socket is not None else None
    sender = asyncio.create_task(send_frames(websocket, subscriber)) if writer is None else None
    context.realtime_access.watch(subscriber, principal.identity)
    expiry = _close_at_expiry(context, principal, subscriber)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if subscriber.dropped:
                # Closing: what the client still sends is not read.
                continue
            text = message_text(message, settings.realtime_max_message_bytes)
            if text is None:
                subscriber.queue.clear()
                hub.close(subscriber, MESSAGE_TOO_BIG, "message too big")
            elif not budget.spend():
                subscriber.queue.clear()
                hub.close(subscriber, POLICY_VIOLATION, "too many messages")
            else:
                await _handle(context, principal, subscriber, text)
    finally:
        context.realtime_access.forget(subscriber)
        hub.disconnect(subscriber)
        if writer is not None:
            writer.stop()
        if sender is not None:
            sender.cancel()
        if expiry is not None:
            expiry.cancel()


def _close_at_expiry(
    context: AppContext, principal: Principal, subscriber: Subscriber
) -> asyncio.TimerHandle | None:
    """Access ends with the token: a timer (not a task, which idle connections would each hold)
    closes the connection when its `exp` passes."""
    expires_at: float | None = principal.identity.claims.get("exp")
    if expires_at is None:
        return None
    delay = expires_at - time.time()
    return asyncio.get_running_loop().call_later(delay, _expire, context, subscriber)


def _expire(context: AppContext, subscriber: Subscriber) -> None:
    hub = context.realtime.hub
    hub.offer(subscriber, error_frame(None, "token_expired"))
    hub.close(subscriber, INVALID_CREDENTIALS, "The access token expired.")


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
    if not isinstance(message, Subscribe):
        topic = parse_topic(message.topic)
        if topic is None:
            hub.offer(subscriber, error_frame(message.topic, "bad_request"))
        else:
            hub.unsubscribe(subscriber, str(topic))
        return
    await _subscribe(context, principal, subscriber, message)


async def _subscribe(
    context: AppContext, principal: Principal, subscriber: Subscriber, message: Subscribe
) -> None:
    """Every topic of `message` is authorized in one database round trip."""
    hub = context.realtime.hub
    wanted: dict[Topic, int | None] = {}
    room = MAX_TOPICS_PER_CONNECTION - len(subscriber.topics)
    for request in message.requests():
        topic = parse_topic(request.topic)
        if topic is None:
            hub.offer(subscriber, error_frame(request.topic, "bad_request"))
            continue
        if str(topic) not in subscriber.topics and topic not in wanted:
            if room <= 0:
                hub.offer(subscriber, error_frame(str(topic), "bad_request"))
                continue
            room -= 1
        wanted[topic] = request.since_seq
    try:
        refusals = await service.refusals_for(context.db, principal.identity, wanted)
    except psycopg.Error as exc:
        # No answer is no permission; the client reconnects and asks again (close 1013), where
        # an exception would end the connection without a close frame.
        log.warning("realtime: subscribe not authorized, the database failed: %s", exc)
        hub.close(subscriber, TRY_AGAIN_LATER, "authorization unavailable; retry later")
        return
    for topic, since_seq in wanted.items():
        name = str(topic)
        refusal = refusals[topic]
        if refusal is not None:
            hub.offer(subscriber, error_frame(name, refusal))
            continue
        hub.subscribe(subscriber, name)
        if since_seq is not None:
            current = hub.known_seq(name)
            if current is None:
                current = await context.realtime.current_seq(name)
            hub.catch_up(subscriber, name, since_seq, current)
