"""The hub with fake sockets: fan-out order, bounded queues and slow consumers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from slotease.realtime.hub import TRY_AGAIN_LATER, Hub
from slotease.realtime.transport import send_frames

pytestmark = pytest.mark.anyio


class FakeSocket:
    """Records what it is sent; a blocked one never finishes a send, like a client that
    stopped reading."""

    def __init__(self, *, blocked: bool = False, expect: int = 0) -> None:
        self.frames: list[dict[str, object]] = []
        self.expect = expect
        self.all_received = asyncio.Event()
        self.closed_with: int | None = None
        self._unblocked = asyncio.Event()
        if not blocked:
            self._unblocked.set()

    async def send_text(self, text: str) -> None:
        await self._unblocked.wait()
        self.frames.append(json.loads(text))
        if len(self.frames) == self.expect:
            self.all_received.set()

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with = code


async def test_a_stuck_consumer_never_delays_a_fast_one() -> None:
    hub = Hub(send_queue=16, replay=8)
    fast, stuck = FakeSocket(expect=1001), FakeSocket(blocked=True)
    fast_sub, stuck_sub = hub.connect(), hub.connect()
    tasks = [
        asyncio.create_task(send_frames(fast, fast_sub)),  # type: ignore[arg-type]
        asyncio.create_task(send_frames(stuck, stuck_sub)),  # type: ignore[arg-type]
    ]
    for subscriber in (fast_sub, stuck_sub):
        hub.subscribe(subscriber, "queue:q")
    started = time.perf_counter()
    for n in range(1000):
        hub.publish("queue:q", "queue.updated", json.dumps({"n": n}))
        assert len(stuck_sub.queue) <= 16
        await asyncio.sleep(0)
    await asyncio.wait_for(fast.all_received.wait(), 1)
    elapsed = time.perf_counter() - started
    assert elapsed < 1
    assert [f["seq"] for f in fast.frames[1:]] == list(range(1, 1001))
    # The stuck client was told to resync once, then dropped from the topic and closed as
    # soon as its socket lets the close through.
    assert stuck_sub.dropped
    assert stuck_sub not in hub._topics["queue:q"].subscribers
    stuck._unblocked.set()
    await asyncio.wait_for(tasks[1], 1)
    assert stuck.closed_with == TRY_AGAIN_LATER
    tasks[0].cancel()


async def test_an_overflowing_consumer_gets_a_resync_per_topic() -> None:
    hub = Hub(send_queue=16, replay=8)
    subscriber = hub.connect()
    hub.subscribe(subscriber, "queue:a")
    hub.subscribe(subscriber, "ticket:b")
    for n in range(20):
        hub.publish("queue:a", "queue.updated", json.dumps({"n": n}))
    frames = []
    while len(subscriber.queue):
        frame = await subscriber.queue.get()
        assert frame is not None
        frames.append(json.loads(frame))
    # Subscribed acks and the first events filled the queue; at the overflow it was emptied
    # and refilled with resyncs (carrying each topic's current seq), then later events.
    resyncs = [f for f in frames if f.get("event") == "resync"]
    assert {(f["topic"], f["seq"]) for f in resyncs} == {("queue:a", 15), ("ticket:b", 0)}
    assert [f["seq"] for f in frames if f.get("event") == "queue.updated"] == list(range(16, 21))
    assert not subscriber.dropped


async def test_a_gap_in_broker_seq_resyncs_subscribers() -> None:
    hub = Hub(send_queue=16, replay=8)
    subscriber = hub.connect()
    hub.subscribe(subscriber, "queue:a")
    hub.deliver("queue:a", "queue.updated", "{}", 4)
    hub.deliver("queue:a", "queue.updated", "{}", 4)
    hub.deliver("queue:a", "queue.updated", "{}", 7)
    frames = [json.loads(await subscriber.queue.get() or "") for _ in range(4)]
    assert [(f.get("event"), f.get("seq")) for f in frames[1:]] == [
        ("queue.updated", 4),
        ("resync", 6),
        ("queue.updated", 7),
    ]
    assert len(subscriber.queue) == 0
