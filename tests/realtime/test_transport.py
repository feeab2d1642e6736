"""Frames written in place by the fan-out (the `slotease.frames` extension), with a fake socket,
and the protocol that offers it, with a fake transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from uvicorn import Config
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from slotease.realtime.hub import TRY_AGAIN_LATER, Hub
from slotease.realtime.transport import FRAMES_EXTENSION, DirectWriter, FanoutProtocol, text_frame

pytestmark = pytest.mark.anyio


class FakeFrameSocket:
    """Takes frames while `open`; a full one takes none until `unblock()`."""

    def __init__(self, *, full: bool = False) -> None:
        self.on_writable: Callable[[], None] | None = None
        self.wire: list[bytes] = []
        self.full = full
        self.closed_with: int | None = None

    def can_write(self) -> bool:
        return not self.full

    def write_frame(self, frame: bytes) -> bool:
        if self.full:
            return False
        self.wire.append(frame)
        return True

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = code

    def detach(self, receiver: Callable[[Any], None]) -> None:
        raise NotImplementedError

    def unblock(self) -> None:
        self.full = False
        assert self.on_writable is not None
        self.on_writable()

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(parse(frame)) for frame in self.wire]


def parse(wire: bytes) -> str:
    """The text of one server frame, read back by websockets' own parser."""
    reader = StreamReader()
    reader.feed_data(wire)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    return bytes(frame.data).decode()


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_text_frames_have_the_length_encoding_of_rfc_6455(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    assert parse(text_frame(text)) == text


async def test_events_are_written_in_the_fan_out_and_encoded_once() -> None:
    hub = Hub(send_queue=16, replay=8)
    sockets = [FakeFrameSocket() for _ in range(3)]
    for socket in sockets:
        subscriber = hub.connect()
        DirectWriter(socket, subscriber)
        hub.subscribe(subscriber, "queue:q")
    hub.publish("queue:q", "queue.updated", json.dumps({"n": 1}))
    # Written before anything awaited: no task per connection.
    assert [len(socket.wire) for socket in sockets] == [2, 2, 2]
    assert sockets[0].texts()[1]["payload"] == {"n": 1}
    assert sockets[0].wire[1] is sockets[1].wire[1] is sockets[2].wire[1]


async def test_a_full_socket_keeps_its_frames_queued_until_it_drains() -> None:
    hub = Hub(send_queue=16, replay=8)
    socket = FakeFrameSocket()
    subscriber = hub.connect()
    DirectWriter(socket, subscriber)
    hub.subscribe(subscriber, "queue:q")
    socket.full = True
    for n in range(3):
        hub.publish("queue:q", "queue.updated", json.dumps({"n": n}))
    assert len(socket.wire) == 1
    assert len(subscriber.queue) == 3
    socket.unblock()
    assert [f["seq"] for f in socket.texts()[1:]] == [1, 2, 3]
    assert len(subscriber.queue) == 0


async def test_a_socket_that_stays_full_is_resynced_then_closed() -> None:
    hub = Hub(send_queue=4, replay=8)
    socket = FakeFrameSocket(full=True)
    subscriber = hub.connect()
    DirectWriter(socket, subscriber)
    hub.subscribe(subscriber, "queue:q")
    for n in range(10):
        hub.publish("queue:q", "queue.updated", json.dumps({"n": n}))
    assert subscriber.dropped
    assert len(subscriber.queue) == 1
    socket.unblock()
    await asyncio.sleep(0)
    assert socket.closed_with == TRY_AGAIN_LATER
    assert socket.wire == []


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


HANDSHAKE = (
    b"GET /v1/realtime HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


async def test_a_detached_connection_stays_open_and_hands_over_what_the_client_sends() -> None:
    received: list[Any] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        socket: FanoutProtocol = scope["extensions"][FRAMES_EXTENSION]["socket"]
        socket.detach(received.append)

    config = Config(endpoint, ws_per_message_deflate=False, lifespan="off")
    config.load()
    protocol = FanoutProtocol(config, ServerState(), {})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(HANDSHAKE)
    await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 101")
    assert not transport.closed
    assert not protocol.tasks
    client = ClientProtocol(parse_uri("ws://localhost/v1/realtime"))
    client.state = OPEN
    client.send_text(b'{"type":"ping"}')
    protocol.data_received(b"".join(client.data_to_send()))
    assert received == [{"type": "websocket.receive", "text": '{"type":"ping"}'}]
    transport.written.clear()
    assert protocol.write_frame(text_frame("hello"))
    assert parse(bytes(transport.written)) == "hello"
    protocol.connection_lost(None)
    assert received[-1]["type"] == "websocket.disconnect"
    assert not protocol.write_frame(text_frame("gone"))
