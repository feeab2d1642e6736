"""How a realtime connection meets its socket: directly through the server's protocol where the
server allows it, else through the ASGI calls.

`slotease serve` runs uvicorn with `FanoutProtocol`: its websockets (sans-I/O) protocol plus a
server extension, `slotease.frames`, with two powers.
- **Frames written in place.** The app writes a ready WebSocket frame to the socket without
  awaiting anything. An event is serialised and framed once, and the same bytes are written
  to every subscriber in the fan-out loop itself. A socket whose send buffer is full takes
  nothing more: frames wait in the subscriber's bounded queue until the transport asks for
  more, so a slow client still costs only its own freshness (the hub's overflow rules hold).
- **Detached connections.** Once a connection is accepted and authenticated, the endpoint
  hands the protocol a callback for what the client sends and returns: the protocol keeps
  the socket open and calls it with each message. An idle connection then holds no task and
  no coroutine (the endpoint's, and those of every middleware around it, are gone), only the
  protocol and the connection's own small objects.

Under another ASGI server (granian, uvicorn's other protocols) the extension is absent: each
connection keeps its endpoint coroutine reading and a sender task draining its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from typing import Any, Protocol

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from slotease.realtime.hub import Subscriber

FRAMES_EXTENSION = "slotease.frames"
_FIN_TEXT = 0x81

Receiver = Callable[[Message], None]


class FrameSocket(Protocol):
    """What the `slotease.frames` extension offers the app."""

    on_writable: Callable[[], None] | None

    def can_write(self) -> bool:
        """True while the connection is open and its send buffer is below the high mark."""

    def write_frame(self, frame: bytes) -> bool:
        """Write a complete, unmasked WebSocket frame, if `can_write()`; False when not."""

    async def close(self, code: int, reason: str) -> None: ...

    def detach(self, receiver: Receiver) -> None:
        """From now on hand every ASGI receive event (the disconnect last) to `receiver`,
        and keep the connection open when the endpoint returns."""


def text_frame(text: str) -> bytes:
    """`text` as one final, unmasked text frame (RFC 6455 section 5.2)."""
    data = text.encode()
    size = len(data)
    if size < 126:
        header = bytes((_FIN_TEXT, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + data


class _FrameCache:
    """The wire form of the frame being fanned out: the hub offers the same string to every
    subscriber in a row, so it is encoded once per event, not once per connection."""

    __slots__ = ("_frame", "_text")

    def __init__(self) -> None:
        self._text = ""
        self._frame = text_frame("")

    def frame(self, text: str) -> bytes:
        if text is not self._text:
            self._text, self._frame = text, text_frame(text)
        return self._frame


_cache = _FrameCache()


class _Inbox:
    """uvicorn's receive queue, lighter than the asyncio.Queue (three deques) it replaces, and
    a direct call once the connection is detached."""

    __slots__ = ("_messages", "_waiter", "receiver")

    def __init__(self) -> None:
        self._messages: list[Message] = []
        self._waiter: asyncio.Future[None] | None = None
        self.receiver: Receiver | None = None

    def put_nowait(self, message: Message) -> None:
        if self.receiver is not None:
            self.receiver(message)
            return
        self._messages.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._messages

    def take(self) -> list[Message]:
        messages, self._messages = self._messages, []
        return messages

    async def get(self) -> Message:
        while not self._messages:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._messages.pop(0)


class _Writable:
    """uvicorn's "send buffer below the high mark" flag, lighter than an asyncio.Event: the
    waiters' list exists only while someone waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol with the `slotease.frames` extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: _Inbox = _Inbox()  # type: ignore[assignment]
        self.writable: _Writable = _Writable()  # type: ignore[assignment]
        self.on_writable: Callable[[], None] | None = None
        self.detached = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # Ready frames bypass websockets' framing: only right when no extension (compression)
        # was negotiated. The app's task has not run yet, so it sees the extension.
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][FRAMES_EXTENSION] = {"socket": self}

    def can_write(self) -> bool:
        return (
            self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
            and self.writable.is_set()
        )

    def write_frame(self, frame: bytes) -> bool:
        # `can_write()` for an accepted connection, the only kind that has a writer; inlined,
        # since this runs once per subscriber and event.
        if self.close_sent or self.disconnected or not self.writable.is_set():
            return False
        self.transport.write(frame)
        return True

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ClientDisconnected):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    def detach(self, receiver: Receiver) -> None:
        self.detached = True
        # The handshake is over: its request and response (headers and all) are not needed.
        del self.request, self.response
        for message in self.queue.take():
            receiver(message)
        self.queue.receiver = receiver
        self._resume_reading()

    def send_receive_event_to_app(self) -> None:
        super().send_receive_event_to_app()
        # uvicorn pauses reading until the app took the message; a detached receiver took it.
        if self.detached:
            self._resume_reading()

    def _resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.on_writable is not None:
            self.on_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_writable = None
        super().connection_lost(exc)

    async def run_asgi(self) -> None:
        # uvicorn's, except that a detached connection stays open when the endpoint returns.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.detached:
            # Only the accept and close paths of `send` read the scope, and those are past.
            del self.scope
        elif self.close_timer is None:
            self.transport.close()


def frame_socket(websocket: WebSocket) -> FrameSocket | None:
    extension: dict[str, Any] | None = websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION)
    return None if extension is None else extension["socket"]


class DirectWriter:
    """Writes a subscriber's frames as the hub queues them, while the socket takes them; the
    rest waits in the queue until the socket is writable again."""

    __slots__ = ("_closing", "_socket", "_subscriber")

    def __init__(self, socket: FrameSocket, subscriber: Subscriber) -> None:
        self._socket = socket
        self._subscriber = subscriber
        self._closing: asyncio.Task[None] | None = None
        subscriber.queue.write_now = self.write_now
        socket.on_writable = self.drain

    def write_now(self, text: str | None) -> bool:
        if self._closing is not None:
            return False
        if text is None:
            if not self._socket.can_write():
                return False
            code, reason = self._subscriber.closing
            self._closing = asyncio.create_task(self._socket.close(code, reason))
            return True
        if not self._socket.write_frame(_cache.frame(text)):
            return False
        self._subscriber.sent()
        return True

    def drain(self) -> None:
        queue = self._subscriber.queue
        while len(queue) and self._closing is None and self._socket.can_write():
            self.write_now(queue.pop())

    def stop(self) -> None:
        self._subscriber.queue.write_now = None
        self._socket.on_writable = None


async def send_frames(websocket: WebSocket, subscriber: Subscriber) -> None:
    """A connection's writer where the server has no `slotease.frames`: drains its send queue,
    so a slow socket blocks no one else; closes the connection when the hub gave up on it."""
    try:
        while (frame := await subscriber.queue.get()) is not None:
            await websocket.send_text(frame)
            subscriber.sent()
        code, reason = subscriber.closing
        await websocket.close(code=code, reason=reason)
    except (WebSocketDisconnect, RuntimeError):
        # The client left; the receive loop sees the disconnect and cleans up.
        return
