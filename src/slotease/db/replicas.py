"""Reads that tolerate lag, sent to streaming replicas that keep up with the primary.

A replica's lag is measured against the primary's WAL position rather than
`now() - pg_last_xact_replay_timestamp()`, which grows without bound while the primary is idle:
every check samples the primary's `pg_current_wal_lsn()`, and a replica is as far behind as the
oldest sample it has not replayed yet. A replica that has replayed the newest sample is caught
up, however long ago the last write was. The checks run in the background every
`replica_check_seconds`, so no request pays for them.

A caller who wrote within the last `max_lag + check` seconds reads from the primary
(read-your-writes): that is the longest a replica judged fresh can be behind the write. The
marker lives in Redis when configured, so it holds on every API process.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol

from psycopg.conninfo import conninfo_to_dict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from slotease.db.database import Database
from slotease.db.queries import fetch_row
from slotease.kit.background import running

log = logging.getLogger(__name__)

_WRITER_PREFIX = "slotease:wrote:"


def lsn_position(lsn: str) -> int:
    """A `pg_lsn` text (`16/B374D848`) as a comparable number."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def replica_name(conninfo: str) -> str:
    """How /ready and the logs name a replica: its address, never its password."""
    params = conninfo_to_dict(conninfo)
    return f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"


@dataclass
class Replica:
    name: str
    database: Database
    # None until a check succeeded, and again while the replica does not answer.
    lag_seconds: float | None = None
    problem: str | None = "not checked yet"

    def usable(self, max_lag: float) -> bool:
        return self.lag_seconds is not None and self.lag_seconds <= max_lag

    def report(self, max_lag: float) -> dict[str, object]:
        state = "ok" if self.usable(max_lag) else ("lagging" if self.problem is None else "down")
        lag = None if self.lag_seconds is None else round(self.lag_seconds, 3)
        return {"name": self.name, "state": state, "lag_seconds": lag, "problem": self.problem}


class RecentWriters(Protocol):
    """Who wrote within the read-your-writes window."""

    async def mark(self, who: str) -> None: ...

    async def wrote_recently(self, who: str) -> bool: ...


class MemoryWriters:
    """One process's marks: enough without Redis, where there is one API process."""

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._until: dict[str, float] = {}

    async def mark(self, who: str) -> None:
        now = time.monotonic()
        if len(self._until) > 10_000:
            self._until = {k: until for k, until in self._until.items() if until > now}
        self._until[who] = now + self._window

    async def wrote_recently(self, who: str) -> bool:
        return self._until.get(who, 0.0) > time.monotonic()


class RedisWriters:
    """Marks shared by every API process, each expiring on its own."""

    def __init__(self, redis: Redis, window_seconds: float) -> None:
        self._redis = redis
        self._window_ms = max(1, round(window_seconds * 1000))

    async def mark(self, who: str) -> None:
        try:
            await self._redis.set(_WRITER_PREFIX + who, b"1", px=self._window_ms)
        except RedisError:
            log.warning("could not record a write for read-your-writes", exc_info=True)

    async def wrote_recently(self, who: str) -> bool:
        try:
            return bool(await self._redis.exists(_WRITER_PREFIX + who))
        except RedisError:
            # Unknown: the primary is always right.
            return True


class ReadRouting:
    """Chooses the database of a lag-tolerant read: a replica that keeps up (in turn), or the
    primary."""

    def __init__(
        self,
        primary: Database,
        replicas: list[Replica],
        *,
        max_lag_seconds: float,
        check_seconds: float,
        writers: RecentWriters,
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.max_lag = max_lag_seconds
        self.check_seconds = check_seconds
        self.writers = writers
        self._turn = itertools.count()
        # (monotonic time, primary WAL position), oldest first; what is older than any lag we
        # would still accept is of no use.
        self._samples: deque[tuple[float, int]] = deque()
        self._checking = AsyncExitStack()

    @property
    def enabled(self) -> bool:
        return bool(self.replicas)

    async def start(self) -> None:
        if not self.replicas:
            return
        for replica in self.replicas:
            # Not waited for: a replica that is down must not keep the API from starting.
            await replica.database.pool.open(wait=False)
        await self.check()
        await self._checking.enter_async_context(running(self._check_periodically()))

    async def stop(self) -> None:
        await self._checking.aclose()
        for replica in self.replicas:
            await replica.database.close()

    async def database_for(self, writer: str | None) -> Database:
        """The database a read by `writer` (a caller's key, None for anonymous) goes to."""
        usable = [r for r in self.replicas if r.usable(self.max_lag)]
        if not usable:
            return self.primary
        if writer is not None and await self.writers.wrote_recently(writer):
            return self.primary
        return usable[next(self._turn) % len(usable)].database

    async def wrote(self, writer: str | None) -> None:
        """Record that `writer` just committed a change, so its next reads see it."""
        if self.replicas and writer is not None:
            await self.writers.mark(writer)

    def report(self) -> list[dict[str, object]]:
        return [replica.report(self.max_lag) for replica in self.replicas]

    async def check(self) -> None:
        await self._sample_primary()
        await asyncio.gather(*(self._check_replica(replica) for replica in self.replicas))

    async def _check_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.check()
            except Exception:
                log.exception("replica check failed")

    async def _sample_primary(self) -> None:
        try:
            async with self.primary.pool.connection(timeout=self.check_seconds) as conn:
                row = await fetch_row(conn, "select pg_current_wal_lsn()::text as lsn")
        except Exception:
            # Without a new sample the replicas' lag grows with the age of the last one.
            log.warning("could not read the primary's WAL position", exc_info=True)
            return
        now = time.monotonic()
        self._samples.append((now, lsn_position(row["lsn"])))
        horizon = now - self.max_lag - 2 * self.check_seconds
        while len(self._samples) > 1 and self._samples[1][0] < horizon:
            self._samples.popleft()

    async def _check_replica(self, replica: Replica) -> None:
        try:
            async with replica.database.pool.connection(timeout=self.check_seconds) as conn:
                row = await fetch_row(
                    conn,
                    "select pg_is_in_recovery() as standby,"
                    " pg_last_wal_replay_lsn()::text as replayed",
                )
        except Exception as exc:
            if replica.problem is None:
                log.warning("replica %s does not answer: %s", replica.name, exc)
            replica.lag_seconds, replica.problem = None, "unreachable"
            return
        if not row["standby"] or row["replayed"] is None:
            # Promoted, or not a standby at all: its data may have parted from the primary's.
            replica.lag_seconds, replica.problem = None, "not a standby"
            return
        replica.lag_seconds, replica.problem = self._lag(lsn_position(row["replayed"])), None

    def _lag(self, replayed: int) -> float | None:
        """How long ago the primary had written no more than `replayed`: the age of the newest
        sample the replica has replayed; None when it has replayed none of them."""
        seen = [at for at, position in self._samples if position <= replayed]
        if not seen:
            return None if not self._samples else time.monotonic() - self._samples[0][0]
        return time.monotonic() - seen[-1]
