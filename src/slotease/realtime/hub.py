"""Fan-out of topic events to the WebSocket connections of this process.

Every topic has a `seq` that rises by one per event and a bounded replay buffer of its latest
frames, so a client that reconnects can ask for what it missed. Fan-out never awaits a socket:
it appends the frame (serialised once per topic) to each subscriber's bounded send queue, which
the connection's writer drains (`realtime.transport`: in place while the socket takes it, or a
sender task). A subscriber whose queue is full loses what
was queued and is told to resync each of its topics; one that is still stuck at the next
overflow is closed. A slow client therefore costs its own freshness, never anyone else's.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import islice
from typing import Protocol

# Sent through a send queue to make its sender close the connection.
CLOSE = None
RESYNC = "resync"
# Close code for a client dropped for not keeping up ("try again later").
TRY_AGAIN_LATER = 1013
TOO_SLOW = "too slow; reconnect and resync"


def event_frame(topic: str, event: str, payload_json: str, seq: int) -> str:
    # The payload arrives already serialised (from the broker), so the frame is assembled
    # around it instead of parsing and dumping it again.
    return (
        f'{{"type":"event","topic":{json.dumps(topic)},"event":{json.dumps(event)},'
        f'"payload":{payload_json},"seq":{seq}}}'
    )


def resync_frame(topic: str, seq: int) -> str:
    return event_frame(topic, RESYNC, "{}", seq)


def error_frame(topic: str | None, reason: str) -> str:
    return json.dumps({"type": "error", "topic": topic, "reason": reason})


class SendQueue:
    """A bounded FIFO with a single consumer; lighter than asyncio.Queue, which matters when
    every idle connection holds one."""

    __slots__ = ("_frames", "_limit", "_waiter", "write_now")

    def __init__(self, limit: int) -> None:
        self._frames: deque[str | None] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        # A consumer that writes without awaiting (realtime.transport.DirectWriter) takes a
        # frame here, in the fan-out loop, while none waits before it; True when it did.
        self.write_now: Callable[[str | None], bool] | None = None

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def full(self) -> bool:
        return len(self._frames) >= self._limit

    def put(self, frame: str | None) -> None:
        if self.write_now is not None and not self._frames and self.write_now(frame):
            return
        self._frames.append(frame)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def clear(self) -> None:
        self._frames.clear()

    def pop(self) -> str | None:
        return self._frames.popleft()

    async def get(self) -> str | None:
        while not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._frames.popleft()


class Subscriber:
    """One connection's side of the hub: its topics and its send queue."""

    __slots__ = ("closing", "dropped", "queue", "stalled", "topics")

    def __init__(self, queue_limit: int) -> None:
        self.queue = SendQueue(queue_limit)
        self.topics: set[str] = set()
        # Set at an overflow, cleared by the sender once a frame went out: a second overflow
        # while still set means the client is not reading at all.
        self.stalled = False
        self.dropped = False
        # The close code and reason the sender closes with once it reaches CLOSE.
        self.closing = (TRY_AGAIN_LATER, TOO_SLOW)

    def sent(self) -> None:
        self.stalled = False


class TopicLog:
    __slots__ = ("buffer", "seq", "subscribers")

    def __init__(self, replay: int) -> None:
        # None until this process has seen the topic's counter (the broker may keep it elsewhere).
        self.seq: int | None = None
        self.buffer: deque[tuple[int, str]] = deque(maxlen=replay)
        self.subscribers: set[Subscriber] = set()


class TopicObserver(Protocol):
    """Told when a topic gains its first subscriber in this process or loses its last, and
    of every event the hub delivers (realtime.positions derives ticket positions from them)."""

    def followed(self, topic: str) -> None: ...

    def unfollowed(self, topic: str) -> None: ...

    def published(self, topic: str, event: str) -> None: ...


class Hub:
    def __init__(self, *, send_queue: int = 256, replay: int = 500, max_topics: int = 5000) -> None:
        self.send_queue = send_queue
        self.replay = replay
        # Topics without subscribers are kept for replay only while there is room; the least
        # recently published go first (a client asking for them later gets a resync).
        self.max_topics = max_topics
        self._topics: OrderedDict[str, TopicLog] = OrderedDict()
        self._connected: set[Subscriber] = set()
        self._observer: TopicObserver | None = None

    def observe(self, observer: TopicObserver) -> None:
        self._observer = observer

    @property
    def connections(self) -> int:
        """WebSocket connections this process holds open now."""
        return len(self._connected)

    def connect(self) -> Subscriber:
        subscriber = Subscriber(self.send_queue)
        self._connected.add(subscriber)
        return subscriber

    def disconnect(self, subscriber: Subscriber) -> None:
        self._connected.discard(subscriber)
        for topic in list(subscriber.topics):
            self.unsubscribe(subscriber, topic)

    def known_seq(self, topic: str) -> int | None:
        log = self._topics.get(topic)
        return None if log is None else log.seq

    def subscribe(self, subscriber: Subscriber, topic: str) -> None:
        log = self._log(topic)
        if not log.subscribers and self._observer is not None:
            self._observer.followed(topic)
        log.subscribers.add(subscriber)
        subscriber.topics.add(topic)
        self.offer(subscriber, json.dumps({"type": "subscribed", "topic": topic}))

    def catch_up(self, subscriber: Subscriber, topic: str, since_seq: int, current: int) -> None:
        """Replay what `subscriber` missed after `since_seq`, or tell it to resync when the
        buffer no longer reaches back that far (or the counter restarted below it)."""
        if since_seq == current:
            return
        buffer = self._log(topic).buffer
        if since_seq < current and buffer and buffer[0][0] <= since_seq + 1:
            for seq, frame in buffer:
                if seq > since_seq:
                    self.offer(subscriber, frame)
            return
        self.offer(subscriber, resync_frame(topic, current))

    def unsubscribe(self, subscriber: Subscriber, topic: str) -> None:
        subscriber.topics.discard(topic)
        log = self._topics.get(topic)
        if log is not None and subscriber in log.subscribers:
            log.subscribers.discard(subscriber)
            if not log.subscribers and self._observer is not None:
                self._observer.unfollowed(topic)

    def publish(self, topic: str, event: str, payload_json: str) -> None:
        """Deliver an event whose seq this process allocates (the in-process broker)."""
        log = self._log(topic)
        self._append(topic, log, (log.seq or 0) + 1, event, payload_json)

    def deliver(self, topic: str, event: str, payload_json: str, seq: int) -> None:
        """Deliver an event whose seq was allocated by the shared broker."""
        log = self._log(topic)
        if log.seq is not None and seq <= log.seq:
            return
        if log.seq is not None and seq != log.seq + 1:
            # Events were lost on the way (a broker reconnect): what is buffered no longer
            # joins up, and subscribers must refetch.
            log.buffer.clear()
            frame = resync_frame(topic, seq - 1)
            for subscriber in list(log.subscribers):
                self.offer(subscriber, frame)
        self._append(topic, log, seq, event, payload_json)

    def offer(self, subscriber: Subscriber, frame: str | None) -> None:
        if subscriber.dropped:
            return
        if not subscriber.queue.full:
            subscriber.queue.put(frame)
            return
        subscriber.queue.clear()
        if subscriber.stalled:
            self.close(subscriber, TRY_AGAIN_LATER, TOO_SLOW)
            return
        subscriber.stalled = True
        for topic in subscriber.topics:
            subscriber.queue.put(resync_frame(topic, self.known_seq(topic) or 0))

    def close(self, subscriber: Subscriber, code: int, reason: str) -> None:
        """Stop the fan-out to `subscriber`; its sender closes the connection with `code` once
        it has sent what is already queued."""
        if subscriber.dropped:
            return
        self.disconnect(subscriber)
        subscriber.dropped = True
        subscriber.closing = (code, reason)
        subscriber.queue.put(CLOSE)

    def _append(self, topic: str, log: TopicLog, seq: int, event: str, payload_json: str) -> None:
        log.seq = seq
        frame = event_frame(topic, event, payload_json, seq)
        log.buffer.append((seq, frame))
        self._topics.move_to_end(topic)
        for subscriber in list(log.subscribers):
            self.offer(subscriber, frame)
        if self._observer is not None:
            self._observer.published(topic, event)

    def _log(self, topic: str) -> TopicLog:
        log = self._topics.get(topic)
        if log is None:
            log = self._topics[topic] = TopicLog(self.replay)
            self._evict()
        return log

    def _evict(self) -> None:
        excess = len(self._topics) - self.max_topics
        if excess <= 0:
            return
        idle = (name for name, log in self._topics.items() if not log.subscribers)
        for name in list(islice(idle, excess)):
            del self._topics[name]
