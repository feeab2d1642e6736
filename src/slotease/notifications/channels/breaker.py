"""A circuit breaker per provider: after N consecutive transient failures calls stop for a
cool-down, then a single probe decides whether it closes again.

State lives in the process, or in Redis when configured so that every worker shares it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from redis.asyncio import Redis

from slotease.notifications.channels.base import DeliveryError, TransientDeliveryError

T = TypeVar("T")


class CircuitOpen(TransientDeliveryError):
    """The provider failed too often lately; the call was not even tried."""


class BreakerStore(Protocol):
    async def allow(self, name: str, cooldown: float) -> bool: ...
    async def success(self, name: str) -> None: ...
    async def failure(self, name: str, threshold: int, cooldown: float) -> None: ...


@dataclass
class _State:
    failures: int = 0
    open_until: float | None = None
    probing: bool = False


@dataclass
class MemoryBreakerStore:
    states: dict[str, _State] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    async def allow(self, name: str, cooldown: float) -> bool:
        state = self.states.setdefault(name, _State())
        if state.open_until is None:
            return True
        if self.clock() < state.open_until or state.probing:
            return False
        state.probing = True  # half-open: this caller is the probe
        return True

    async def success(self, name: str) -> None:
        self.states[name] = _State()

    async def failure(self, name: str, threshold: int, cooldown: float) -> None:
        state = self.states.setdefault(name, _State())
        state.failures += 1
        if state.probing or state.failures >= threshold:
            state.open_until = self.clock() + cooldown
            state.probing = False


class RedisBreakerStore:
    def __init__(self, redis: Redis, prefix: str = "slotease:breaker") -> None:
        self.redis = redis
        self.prefix = prefix

    def _keys(self, name: str) -> tuple[str, str, str]:
        base = f"{self.prefix}:{name}"
        return f"{base}:failures", f"{base}:open", f"{base}:probe"

    async def allow(self, name: str, cooldown: float) -> bool:
        _, opened, probe = self._keys(name)
        if not await self.redis.exists(opened):
            return True
        # The "open" key outlives its cool-down by design: its "until" value tells open from
        # half-open, and SET NX elects exactly one probe across all processes.
        until = float(await self.redis.get(opened) or 0)
        if time.time() < until:
            return False
        return bool(await self.redis.set(probe, "1", nx=True, px=int(cooldown * 1000)))

    async def success(self, name: str) -> None:
        await self.redis.delete(*self._keys(name))

    async def failure(self, name: str, threshold: int, cooldown: float) -> None:
        failures, opened, probe = self._keys(name)
        count = await self.redis.incr(failures)
        probing = await self.redis.exists(probe)
        if probing or count >= threshold:
            await self.redis.set(opened, str(time.time() + cooldown))
            await self.redis.delete(probe)


class Breaker:
    def __init__(self, store: BreakerStore, *, threshold: int, cooldown: float) -> None:
        self.store = store
        self.threshold = threshold
        self.cooldown = cooldown

    async def call(self, name: str, attempt: Callable[[], Awaitable[T]]) -> T:
        if not await self.store.allow(name, self.cooldown):
            raise CircuitOpen(f"{name}: circuit open after repeated failures")
        try:
            result = await attempt()
        except DeliveryError as exc:
            # A refusal of one message (a bad number) says nothing about the provider's health.
            if exc.transient:
                await self.store.failure(name, self.threshold, self.cooldown)
            else:
                await self.store.success(name)
            raise
        await self.store.success(name)
        return result
