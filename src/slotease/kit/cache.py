"""A small cache of computed answers, each kept for a while.

Callers make their keys current: availability answers are kept a day each, keyed by versions
the database bumps with every change they depend on, so an entry that a change made stale is
never looked up again (it then expires on its own). Entries are read and written in batches:
one round trip to Redis for a month of days. In-process without Redis (one server process), Redis
when `REDIS_URL` is set so that all processes share the computed answers.
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis

_PREFIX = "slotease:cache:"


class Cache(Protocol):
    async def get_many(self, keys: list[str]) -> list[str | None]: ...

    async def set_many(self, entries: dict[str, str], ttl_seconds: int) -> None: ...


class MemoryCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, str]] = {}
        self._max_entries = max_entries

    def _get(self, key: str, now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= now:
            self._entries.pop(key, None)
            return None
        return value

    async def get_many(self, keys: list[str]) -> list[str | None]:
        now = time.monotonic()
        return [self._get(key, now) for key in keys]

    async def set_many(self, entries: dict[str, str], ttl_seconds: int) -> None:
        now = time.monotonic()
        if len(self._entries) + len(entries) > self._max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            while self._entries and len(self._entries) + len(entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]
        for key, value in entries.items():
            self._entries[key] = (now + ttl_seconds, value)


class RedisCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get_many(self, keys: list[str]) -> list[str | None]:
        values: list[bytes | None] = await self._redis.mget([_PREFIX + key for key in keys])
        return [None if value is None else value.decode() for value in values]

    async def set_many(self, entries: dict[str, str], ttl_seconds: int) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, value in entries.items():
                pipe.set(_PREFIX + key, value, ex=ttl_seconds)
            await pipe.execute()


def make_cache(redis: Redis | None) -> Cache:
    return RedisCache(redis) if redis is not None else MemoryCache()
