"""Access granted at subscribe time is checked again while connections stay open: every period,
each caller identity's topics are authorized again in one statement (all the connections of
one identity together, all the anonymous ones together), and a topic that fails is taken away
with an `error` frame. This runs on its own timer, never per event, so fan-out stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import psycopg

from slotease.db.database import Database, DbIdentity
from slotease.realtime import service
from slotease.realtime.hub import Hub, Subscriber, error_frame
from slotease.realtime.topics import Topic, parse_topic

log = logging.getLogger(__name__)


def _identity_key(identity: DbIdentity) -> str:
    return json.dumps([identity.role, identity.claims, identity.api_key_hash], sort_keys=True)


class AccessWatch:
    def __init__(self, db: Database, hub: Hub, *, period_seconds: float) -> None:
        self._db = db
        self._hub = hub
        self._period = period_seconds
        self._watched: dict[Subscriber, DbIdentity] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, subscriber: Subscriber, identity: DbIdentity) -> None:
        self._watched[subscriber] = identity

    def forget(self, subscriber: Subscriber) -> None:
        self._watched.pop(subscriber, None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-access")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            await self.recheck()

    async def recheck(self) -> None:
        groups: dict[str, tuple[DbIdentity, list[Subscriber]]] = {}
        for subscriber, identity in list(self._watched.items()):
            if subscriber.topics:
                key = _identity_key(identity)
                groups.setdefault(key, (identity, []))[1].append(subscriber)
        for identity, subscribers in groups.values():
            topics = {
                topic
                for subscriber in subscribers
                for name in subscriber.topics
                if (topic := parse_topic(name)) is not None
            }
            try:
                refusals = await service.refusals_for(self._db, identity, topics)
            except psycopg.Error as exc:
                # The topics stay until a check succeeds: an outage must not cut every live view.
                log.warning("realtime: topic re-check failed, retried next period: %s", exc)
                continue
            for subscriber in subscribers:
                self._apply(subscriber, refusals)

    def _apply(self, subscriber: Subscriber, refusals: dict[Topic, service.Refusal | None]) -> None:
        for name in list(subscriber.topics):
            topic = parse_topic(name)
            # A topic subscribed since the check began was checked by its own subscribe.
            refusal = refusals.get(topic) if topic is not None else None
            if refusal is not None:
                self._hub.unsubscribe(subscriber, name)
                self._hub.offer(subscriber, error_frame(name, refusal))
