"""Carries topic events from where they are published to the hub of every server process.

Without Redis the broker is the process itself. With Redis, each event goes through one Lua
script that increments the topic's counter and publishes on the shared channel in the same
step, so every process sees every topic's events in `seq` order; each process listens on its
own pub/sub connection and hands what it hears to its hub.

The broker also counts the open connections of each client address, for the cap on them: in
this process without Redis; with Redis as a sorted set of leases per address, each lease
refreshed by the process holding its connection, so a process that dies without closing its
connections frees their places once the leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from slotease.kit.events import DomainEvent
from slotease.realtime.hub import Hub
from slotease.realtime.topics import route_event

log = logging.getLogger(__name__)

# (topic, event name, payload serialised as JSON)
Message = tuple[str, str, str]

# A topic's counter outlives its last event by this long; a client resuming after that gets a
# resync, which is what it needs anyway.
SEQ_TTL_SECONDS = 2 * 24 * 3600
RECONNECT_DELAY_SECONDS = 1.0

_PUBLISH_SCRIPT = """
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], seq .. '\\n' .. ARGV[1] .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return seq
"""

# A lease outlives its last refresh by this long; every process refreshes its own leases three
# times per period.
CONNECTION_LEASE_SECONDS = 60

# Drops the leases that ran out, then takes a place for ARGV[1] unless ARGV[2] are taken.
_OPEN_CONNECTION_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

_KEEP_CONNECTION_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""


class Broker(ABC):
    def __init__(self, hub: Hub, *, connections_per_address: int) -> None:
        self.hub = hub
        self.connections_per_address = connections_per_address

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @abstractmethod
    async def publish(self, messages: Sequence[Message]) -> None: ...

    @abstractmethod
    async def current_seq(self, topic: str) -> int: ...

    @abstractmethod
    async def open_connection(self, address: str, connection_id: str) -> bool:
        """Count a connection of `address`; False (and not counted) when the address already
        holds `connections_per_address`."""

    @abstractmethod
    async def close_connection(self, address: str, connection_id: str) -> None: ...

    async def on_event(self, event: DomainEvent) -> None:
        """The event-bus subscriber: the bus hands over events only after their commit."""
        await self.publish(messages_for(event))


def messages_for(event: DomainEvent) -> list[Message]:
    return [
        (topic, event.name, json.dumps(payload, default=str, separators=(",", ":")))
        for topic, payload in route_event(event)
    ]


class LocalBroker(Broker):
    """One process: the hub allocates every seq itself, and connections are counted here."""

    def __init__(self, hub: Hub, *, connections_per_address: int) -> None:
        super().__init__(hub, connections_per_address=connections_per_address)
        self._open: Counter[str] = Counter()

    async def publish(self, messages: Sequence[Message]) -> None:
        for topic, event, payload_json in messages:
            self.hub.publish(topic, event, payload_json)

    async def current_seq(self, topic: str) -> int:
        # A topic this process has no log of was never published (or was evicted).
        return self.hub.known_seq(topic) or 0

    async def open_connection(self, address: str, connection_id: str) -> bool:
        if self._open[address] >= self.connections_per_address:
            return False
        self._open[address] += 1
        return True

    async def close_connection(self, address: str, connection_id: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


class RedisBroker(Broker):
    def __init__(
        self, hub: Hub, redis: Redis, *, url: str, prefix: str, connections_per_address: int
    ) -> None:
        super().__init__(hub, connections_per_address=connections_per_address)
        self._redis = redis
        # Pub/sub holds its connection for good and blocks on reads, so it gets a client of its
        # own without the short read timeout of the shared one.
        self._listener_client: Redis = Redis.from_url(url, socket_connect_timeout=1)
        self._prefix = prefix
        self._channel = f"{prefix}:events"
        self._script = redis.register_script(_PUBLISH_SCRIPT)
        self._open_script = redis.register_script(_OPEN_CONNECTION_SCRIPT)
        self._keep_script = redis.register_script(_KEEP_CONNECTION_SCRIPT)
        # The leases of this process's connections: connection id -> client address.
        self._leases: dict[str, str] = {}
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pubsub = self._listener_client.pubsub()
        try:
            # Subscribed before the app serves, so no event committed after startup is missed.
            await self._pubsub.subscribe(self._channel)
        except (RedisError, OSError):
            # A Redis outage must not keep the API down: the listener keeps trying, and clients
            # resync from the gap in seq once it is back.
            log.warning("realtime: Redis is unreachable; live updates resume when it is back")
        self._task = asyncio.create_task(self._listen(self._pubsub), name="realtime-redis")
        self._lease_task = asyncio.create_task(self._keep_leases(), name="realtime-leases")

    async def stop(self) -> None:
        for task in (self._task, self._lease_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._listener_client.aclose()

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for topic, event, payload_json in messages:
                await self._script(
                    keys=[self._seq_key(topic), self._channel],
                    args=[topic, event, payload_json, SEQ_TTL_SECONDS],
                    client=pipe,
                )
            await pipe.execute()

    async def current_seq(self, topic: str) -> int:
        value = await self._redis.get(self._seq_key(topic))
        return int(value) if value is not None else 0

    def _seq_key(self, topic: str) -> str:
        return f"{self._prefix}:seq:{topic}"

    async def open_connection(self, address: str, connection_id: str) -> bool:
        try:
            opened = await self._open_script(
                keys=[self._connections_key(address)],
                args=[connection_id, self.connections_per_address, CONNECTION_LEASE_SECONDS],
            )
        except (RedisError, OSError) as exc:
            # Like the rate limits, the cap fails open: a Redis outage must not lock everyone
            # out of live updates.
            log.warning("realtime: connection cap unchecked, Redis is unreachable: %s", exc)
            return True
        if opened:
            self._leases[connection_id] = address
        return bool(opened)

    async def close_connection(self, address: str, connection_id: str) -> None:
        self._leases.pop(connection_id, None)
        try:
            await self._redis.zrem(self._connections_key(address), connection_id)
        except (RedisError, OSError):
            # The lease runs out by itself.
            log.warning("realtime: Redis is unreachable; a connection's lease will expire")

    def _connections_key(self, address: str) -> str:
        return f"{self._prefix}:connections:{address}"

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(CONNECTION_LEASE_SECONDS / 3)
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for connection_id, address in list(self._leases.items()):
                        await self._keep_script(
                            keys=[self._connections_key(address)],
                            args=[connection_id, CONNECTION_LEASE_SECONDS],
                            client=pipe,
                        )
                    await pipe.execute()
            except (RedisError, OSError):
                log.warning("realtime: Redis is unreachable; connection leases not refreshed")

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                if not pubsub.subscribed:
                    await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._deliver(message["data"])
            except (RedisError, OSError):
                # The pub/sub client reconnects and resubscribes on its next read; the hub
                # notices the events lost meanwhile by the gap in seq and resyncs.
                log.warning("realtime: Redis pub/sub connection lost; reconnecting")
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)

    def _deliver(self, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        seq, topic, event, payload_json = text.split("\n", 3)
        self.hub.deliver(topic, event, payload_json, int(seq))


def make_broker(
    hub: Hub, redis: Redis | None, *, url: str | None, prefix: str, connections_per_address: int
) -> Broker:
    if redis is None or url is None:
        return LocalBroker(hub, connections_per_address=connections_per_address)
    return RedisBroker(
        hub, redis, url=url, prefix=prefix, connections_per_address=connections_per_address
    )
