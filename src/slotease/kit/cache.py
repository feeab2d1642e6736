"""A small cache of computed answers, each kept for a while.

Callers make their keys current: availability answers are keyed by a version the database
bumps with every change they depend on, so an entry that a change made stale is never looked
up again (it then expires on its own). In-process without Redis (one server process), Redis
when `REDIS_URL` is set so that all processes share the computed answers.
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis

_PREFIX = "slotease:cache:"


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_seconds: int) -> None: ...


class MemoryCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, str]] = {}
        self._max_entries = max_entries

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return value

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        now = time.monotonic()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (now + ttl_seconds, value)


class RedisCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, key: str) -> str | None:
        value: bytes | None = await self._redis.get(_PREFIX + key)
        return None if value is None else value.decode()

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        await self._redis.set(_PREFIX + key, value, ex=ttl_seconds)


def make_cache(redis: Redis | None) -> Cache:
    return RedisCache(redis) if redis is not None else MemoryCache()
