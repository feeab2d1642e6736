"""`ticket.position` for the tickets this process's clients follow, resolved when their line
moves.

A change of a queue announces one `queue.moved` on `queue:<id>`, whatever the line's length;
no event per waiting ticket crosses the bus or the broker. Every process hears it (through
Redis when configured) and reads, in one statement, the positions of the tickets its own
clients follow in that queue, then publishes `ticket.position` on those topics only, and
only where the position or the wait changed. Changes that arrive together (several counters
calling at once) are read together, at most one read per `MIN_INTERVAL_SECONDS`, so the reads
per second stay bounded however fast the line moves.

Two processes whose clients follow the same ticket both publish its position: the client
then sees the same position twice, which costs less than agreeing on who publishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

import psycopg
from redis.exceptions import RedisError

from slotease.kit.events import DomainEvent
from slotease.queues.schemas import TicketPosition
from slotease.realtime.broker import Broker, messages_for
from slotease.realtime.topics import parse_topic

log = logging.getLogger(__name__)

# The least time between two reads: the first change after a quiet spell is read at once,
# the changes of a busy line during and after that read wait for the next one. A follower
# waits at most this plus one read for its position, well inside the second it may wait.
MIN_INTERVAL_SECONDS = 0.25
MOVED = "queue.moved"

Resolve = Callable[[list[UUID]], Awaitable[list[TicketPosition]]]


class PositionWatch:
    """The hub's observer (see `Hub.observe`): learns which ticket topics have subscribers
    here, and which queues moved."""

    def __init__(self, broker: Broker, resolve: Resolve) -> None:
        self._broker = broker
        self._resolve = resolve
        # Followed tickets and their queue, None until a read has found them waiting.
        self._followed: dict[UUID, UUID | None] = {}
        # What was last published per ticket: (position, wait).
        self._published: dict[UUID, tuple[int, int]] = {}
        self._moved: set[UUID] = set()
        self._wake = asyncio.Event()

    # The hub's calls: synchronous and cheap, they run inside its fan-out.
    def followed(self, topic: str) -> None:
        parsed = parse_topic(topic)
        if parsed is not None and parsed.kind == "ticket":
            self._followed.setdefault(parsed.resource_id, None)

    def unfollowed(self, topic: str) -> None:
        parsed = parse_topic(topic)
        if parsed is not None and parsed.kind == "ticket":
            self._followed.pop(parsed.resource_id, None)
            self._published.pop(parsed.resource_id, None)

    def published(self, topic: str, event: str) -> None:
        if event != MOVED or not self._followed:
            return
        parsed = parse_topic(topic)
        if parsed is not None and parsed.kind == "queue":
            self._moved.add(parsed.resource_id)
            self._wake.set()

    async def run(self) -> None:
        """Read and publish after each burst of changes, for as long as the app serves (run it
        with kit.background.running)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = loop.time()
            try:
                await self.refresh()
            except (psycopg.Error, RedisError, OSError) as exc:
                # The database or Redis is out of reach: the next change reads again, and a
                # follower refetches when its connection or the broker's comes back.
                log.warning("realtime: ticket positions not refreshed: %s", exc)
            await asyncio.sleep(max(0.0, MIN_INTERVAL_SECONDS - (loop.time() - started)))

    async def refresh(self) -> None:
        """Read and publish the positions of the followed tickets of the queues that moved
        (and of those whose queue is not known yet)."""
        moved, self._moved = self._moved, set()
        wanted = [
            ticket for ticket, queue in self._followed.items() if queue is None or queue in moved
        ]
        if not wanted:
            return
        messages = []
        found_all = await self._resolve(wanted)
        # A followed ticket that no longer waits has no position to announce (its own events
        # say what became of it); if it waits again, its next position is news.
        for gone in set(wanted) - {found.id for found in found_all}:
            self._published.pop(gone, None)
        for found in found_all:
            if found.id not in self._followed:
                continue  # unsubscribed during the read
            self._followed[found.id] = found.queue_id
            now = (found.position, found.estimated_wait_minutes)
            if self._published.get(found.id) == now:
                continue
            self._published[found.id] = now
            event = DomainEvent("ticket.position", found.model_dump(mode="json"))
            messages.extend(messages_for(event))
        await self._broker.publish(messages)
