"""How frames reach the sockets: written in place by the hub's fan-out where the server allows
it, else by one sender task per connection.

`slotease serve` runs uvicorn with `FanoutProtocol`, its websockets (sans-I/O) protocol plus a
server extension, `slotease.frames`, through which the app writes a ready WebSocket frame to
the socket without awaiting anything. An event is then serialised and framed once, and the
same bytes are written to every subscriber in the fan-out loop itself: no task, coroutine or
future per connection, idle or busy. A socket whose kernel buffer is full takes nothing more:
frames wait in the subscriber's bounded queue until the transport asks for more, so a slow
client still costs only its own freshness (the hub's overflow rules apply unchanged).

Under another ASGI server (granian, uvicorn's other protocols) the extension is absent and
each connection keeps a sender task draining its queue through `websocket.send_text`.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from slotease.realtime.hub import Subscriber

FRAMES_EXTENSION = "slotease.frames"
_FIN_TEXT = 0x81


class FrameSocket(Protocol):
    """What the `slotease.frames` extension offers the app."""

    on_writable: Callable[[], None] | None

    def can_write(self) -> bool:
        """True while the connection is open and its send buffer is below the high mark."""

    def write_frame(self, frame: bytes) -> None:
        """Write a complete, unmasked WebSocket frame."""


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


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol with the `slotease.frames` extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_writable: Callable[[], None] | None = None

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

    def write_frame(self, frame: bytes) -> None:
        self.transport.write(frame)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.on_writable is not None:
            self.on_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_writable = None
        super().connection_lost(exc)


def frame_socket(websocket: WebSocket) -> FrameSocket | None:
    extension: dict[str, Any] | None = websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION)
    return None if extension is None else extension["socket"]


class DirectWriter:
    """Writes a subscriber's frames as soon as the hub queues them, while the socket takes
    them; the rest waits in the queue until the socket is writable again."""

    __slots__ = ("_closing", "_socket", "_subscriber", "_websocket")

    def __init__(self, websocket: WebSocket, socket: FrameSocket, subscriber: Subscriber) -> None:
        self._websocket = websocket
        self._socket = socket
        self._subscriber = subscriber
        self._closing: asyncio.Task[None] | None = None
        subscriber.queue.on_put = self.drain
        socket.on_writable = self.drain

    def drain(self) -> None:
        queue = self._subscriber.queue
        while len(queue) and self._closing is None and self._socket.can_write():
            text = queue.pop()
            if text is None:
                code, reason = self._subscriber.closing
                self._closing = asyncio.create_task(_close(self._websocket, code, reason))
                return
            self._socket.write_frame(_cache.frame(text))
            self._subscriber.sent()

    def stop(self) -> None:
        self._subscriber.queue.on_put = None
        self._socket.on_writable = None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code=code, reason=reason)
    except (WebSocketDisconnect, RuntimeError):
        # The client left already; the receive loop sees the disconnect and cleans up.
        return


async def send_frames(websocket: WebSocket, subscriber: Subscriber) -> None:
    """A connection's writer where the server has no `slotease.frames`: drains its send queue,
    so a slow socket blocks no one else; closes the connection when the hub gave up on it."""
    try:
        while (frame := await subscriber.queue.get()) is not None:
            await websocket.send_text(frame)
            subscriber.sent()
    except (WebSocketDisconnect, RuntimeError):
        return
    code, reason = subscriber.closing
    await _close(websocket, code, reason)
