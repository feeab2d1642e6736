"""`GET /v1/realtime`: one WebSocket per client, carrying every topic it subscribes to."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable

import psycopg
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.types import Message

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
INTERNAL_ERROR = 1011
# Connections closing their count of connections per address (the broker may need Redis).
_releases: set[asyncio.Task[None]] = set()


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
    connection: Connection | None = None
    try:
        await websocket.accept()
        try:
            principal = resolve_principal(
                websocket, context.token_keys, context.settings.accepted_jwt_issuers
            )
        except Unauthorized as exc:
            await websocket.close(code=INVALID_CREDENTIALS, reason=exc.detail)
            return
        connection = Connection(context, principal, address, connection_id)
    finally:
        if connection is None:
            await context.realtime.close_connection(address, connection_id)
    socket = frame_socket(websocket)
    if socket is not None:
        # The server writes frames in place and hands over what the client sends: this
        # coroutine, and the middleware ones around it, end here (realtime.transport).
        writer = DirectWriter(socket, connection.subscriber)
        connection.stop_writing = writer.stop
        socket.detach(connection.on_message)
        return
    sender = asyncio.create_task(send_frames(websocket, connection.subscriber))
    connection.stop_writing = sender.cancel
    try:
        while True:
            message = await websocket.receive()
            connection.on_message(message)
            if message["type"] == "websocket.disconnect":
                break
    finally:
        connection.close()


class Connection:
    """An accepted, authenticated connection: what its client sends arrives in `on_message`,
    one ASGI receive event at a time (from the server's protocol, or the receive loop), and is
    handled in order: while a subscribe waits for the database, later messages wait too."""

    __slots__ = (
        "_address",
        "_backlog",
        "_busy",
        "_closed",
        "_context",
        "_expiry",
        "_id",
        "_principal",
        "budget",
        "stop_writing",
        "subscriber",
    )

    def __init__(
        self, context: AppContext, principal: Principal, address: str, connection_id: str
    ) -> None:
        settings = context.settings
        self._context = context
        self._principal = principal
        self._address = address
        self._id = connection_id
        self.subscriber = context.realtime.hub.connect()
        self.budget = MessageBudget(
            settings.realtime_messages_per_second, settings.realtime_message_burst
        )
        self.stop_writing: Callable[[], object] | None = None
        self._busy: asyncio.Task[None] | None = None
        self._backlog: deque[str] | None = None
        self._closed = False
        context.realtime_access.watch(self.subscriber, principal.identity)
        self._expiry = _close_at_expiry(context, principal, self.subscriber)

    def on_message(self, message: Message) -> None:
        if message["type"] == "websocket.disconnect":
            self.close()
            return
        subscriber = self.subscriber
        if self._closed or subscriber.dropped:
            # Closing: what the client still sends is not read.
            return
        hub = self._context.realtime.hub
        text = message_text(message, self._context.settings.realtime_max_message_bytes)
        if text is None:
            subscriber.queue.clear()
            hub.close(subscriber, MESSAGE_TOO_BIG, "message too big")
        elif not self.budget.spend():
            subscriber.queue.clear()
            hub.close(subscriber, POLICY_VIOLATION, "too many messages")
        elif self._busy is not None:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(text)
        else:
            self._handle(text)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        context = self._context
        context.realtime_access.forget(self.subscriber)
        context.realtime.hub.disconnect(self.subscriber)
        if self.stop_writing is not None:
            self.stop_writing()
        if self._expiry is not None:
            self._expiry.cancel()
        if self._busy is not None:
            self._busy.cancel()
        release = asyncio.create_task(context.realtime.close_connection(self._address, self._id))
        _releases.add(release)
        release.add_done_callback(_releases.discard)

    def _handle(self, text: str) -> None:
        hub = self._context.realtime.hub
        subscriber = self.subscriber
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
        self._busy = asyncio.create_task(
            _subscribe(self._context, self._principal, subscriber, message)
        )
        self._busy.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._busy = None
        if task.cancelled() or self._closed:
            return
        if (exc := task.exception()) is not None:
            log.error("realtime: subscribe failed", exc_info=exc)
            self._context.realtime.hub.close(self.subscriber, INTERNAL_ERROR, "internal error")
            return
        backlog = self._backlog
        while backlog and self._busy is None and not self.subscriber.dropped:
            self._handle(backlog.popleft())


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
