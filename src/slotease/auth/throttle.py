"""Failed sign-ins, throttled per account and per client address (api.md, "Accounts").

After ACCOUNT_FAILURES failures within WINDOW_SECONDS, an account is locked for
FIRST_LOCK_SECONDS after its latest failure, and every further failure doubles the lock (up to
the window); an address is locked the same way after SLOTEASE_LOGIN_FAILURES_PER_ADDRESS
failures. A locked attempt is refused before its password is checked, so the right password is
refused too, and it does not count as a failure. A successful sign-in clears its account.

An attempt is written down as a failure before the password is checked and struck off if it
succeeds: concurrent guesses then see each other, instead of all passing the check while none
has failed yet. Failures live in Redis when it is configured (one sorted set per account and
per address), so that the limits hold across processes, and in this process's memory otherwise.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from slotease.config import Settings
from slotease.kit.problems import TooManyRequests
from slotease.kit.secrets import hash_secret

KEY_PREFIX = "slotease:signin"
WINDOW_SECONDS = 15 * 60
ACCOUNT_FAILURES = 5
FIRST_LOCK_SECONDS = 60
# The in-process log sweeps keys whose failures have all expired once it holds this many.
_MEMORY_SWEEP_AT = 10_000


class FailureLog(Protocol):
    async def add(self, key: str, entry: str, at: float) -> list[tuple[str, float]]:
        """Record `entry` and answer the key's entries of the window, oldest first."""

    async def remove(self, key: str, entry: str) -> None: ...

    async def clear(self, key: str) -> None: ...


class MemoryFailureLog:
    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[str, float]]] = {}

    async def add(self, key: str, entry: str, at: float) -> list[tuple[str, float]]:
        if len(self._entries) >= _MEMORY_SWEEP_AT:
            self._sweep(at)
        entries = [item for item in self._entries.get(key, []) if item[1] > at - WINDOW_SECONDS]
        entries.append((entry, at))
        self._entries[key] = entries
        return list(entries)

    async def remove(self, key: str, entry: str) -> None:
        entries = [item for item in self._entries.get(key, []) if item[0] != entry]
        if entries:
            self._entries[key] = entries
        else:
            self._entries.pop(key, None)

    async def clear(self, key: str) -> None:
        self._entries.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._entries.items() if v[-1][1] <= now - WINDOW_SECONDS]:
            del self._entries[key]


class RedisFailureLog:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, key: str, entry: str, at: float) -> list[tuple[str, float]]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", at - WINDOW_SECONDS)
            pipe.zadd(key, {entry: at})
            pipe.zrange(key, 0, -1, withscores=True)
            pipe.expire(key, WINDOW_SECONDS)
            *_, entries, _ = await pipe.execute()
        return [(member.decode(), float(score)) for member, score in entries]

    async def remove(self, key: str, entry: str) -> None:
        await self._redis.zrem(key, entry)

    async def clear(self, key: str) -> None:
        await self._redis.delete(key)


def retry_after(earlier: list[tuple[str, float]], threshold: int, now: float) -> int | None:
    """Seconds until an attempt is allowed, given the failures before it; None: allowed now."""
    if len(earlier) < threshold:
        return None
    lock = min(FIRST_LOCK_SECONDS * 2 ** (len(earlier) - threshold), WINDOW_SECONDS)
    remaining = earlier[-1][1] + lock - now
    return math.ceil(remaining) if remaining > 0 else None


@dataclass(frozen=True)
class Attempt:
    account_key: str
    address_key: str
    entry: str


class LoginThrottle:
    def __init__(
        self,
        settings: Settings,
        redis: Redis | None,
        on_storage_error: Callable[[Exception], None],
    ) -> None:
        self._log: FailureLog = MemoryFailureLog() if redis is None else RedisFailureLog(redis)
        self._address_failures = settings.login_failures_per_address
        self._on_storage_error = on_storage_error

    async def begin(self, email: str, address: str) -> Attempt | None:
        """Count an attempt as failed until `succeeded`; TooManyRequests while the account or
        the address is locked. None when the storage is down: the attempt goes unthrottled,
        as requests go unlimited then."""
        account = hash_secret(email.strip().lower())[:32]
        attempt = Attempt(
            account_key=f"{KEY_PREFIX}:account:{account}",
            address_key=f"{KEY_PREFIX}:address:{address}",
            entry=secrets.token_hex(8),
        )
        now = time.time()
        try:
            waits = [
                retry_after(await self._earlier(key, attempt.entry, now), threshold, now)
                for key, threshold in (
                    (attempt.account_key, ACCOUNT_FAILURES),
                    (attempt.address_key, self._address_failures),
                )
            ]
            locked = [wait for wait in waits if wait is not None]
            if locked:
                await self._strike_off(attempt)
        except RedisError as exc:
            self._on_storage_error(exc)
            return None
        if locked:
            wait = max(locked)
            raise TooManyRequests(
                f"Too many failed sign-ins; try again in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        return attempt

    async def succeeded(self, attempt: Attempt | None) -> None:
        if attempt is None:
            return
        try:
            await self._log.clear(attempt.account_key)
            await self._log.remove(attempt.address_key, attempt.entry)
        except RedisError as exc:
            self._on_storage_error(exc)

    async def _earlier(self, key: str, entry: str, now: float) -> list[tuple[str, float]]:
        entries = await self._log.add(key, entry, now)
        mine = next(i for i, (member, _) in enumerate(entries) if member == entry)
        return entries[:mine]

    async def _strike_off(self, attempt: Attempt) -> None:
        await self._log.remove(attempt.account_key, attempt.entry)
        await self._log.remove(attempt.address_key, attempt.entry)
