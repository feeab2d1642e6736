"""A small cache of computed answers with per-namespace versions.

Entries are looked up under a namespace's current version; bumping the version makes every
older entry unreachable at once (they then expire on their own). In-process without Redis
(one server process), Redis when `REDIS_URL` is set so that all processes share it.
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis

_PREFIX = "slotease:cache:"
# A version outlives every entry stored under it by far, so a version key that expires and
# restarts at 0 cannot reach a live entry.
_VERSION_TTL_SECONDS = 7 * 24 * 3600


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_seconds: int) -> None: ...

    async def version(self, namespace: str) -> int: ...

    async def bump(self, namespace: str) -> None: ...


class MemoryCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, str]] = {}
        self._versions: dict[str, int] = {}
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

    async def version(self, namespace: str) -> int:
        return self._versions.get(namespace, 0)

    async def bump(self, namespace: str) -> None:
        self._versions[namespace] = self._versions.get(namespace, 0) + 1


class RedisCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, key: str) -> str | None:
        value: bytes | None = await self._redis.get(_PREFIX + key)
        return None if value is None else value.decode()

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        await self._redis.set(_PREFIX + key, value, ex=ttl_seconds)

    async def version(self, namespace: str) -> int:
        value: bytes | None = await self._redis.get(_PREFIX + "v:" + namespace)
        return 0 if value is None else int(value)

    async def bump(self, namespace: str) -> None:
        key = _PREFIX + "v:" + namespace
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, _VERSION_TTL_SECONDS)
            await pipe.execute()


def make_cache(redis: Redis | None) -> Cache:
    return RedisCache(redis) if redis is not None else MemoryCache()
