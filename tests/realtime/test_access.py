"""The periodic re-check against a real database: one check per caller identity covers all of
its connections, and what fails is taken away from each of them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from slotease.db.database import ANONYMOUS, Database
from slotease.realtime.access import AccessWatch
from slotease.realtime.hub import Hub, Subscriber
from tests.factories import Owner, make_organization
from tests.realtime.test_websocket import make_queue

pytestmark = pytest.mark.anyio


@pytest.fixture
async def database(app_conninfo: str) -> AsyncIterator[Database]:
    db = Database(app_conninfo, min_size=1, max_size=1)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def drain(subscriber: Subscriber) -> list[dict[str, object]]:
    frames = []
    while len(subscriber.queue):
        frame = await subscriber.queue.get()
        assert frame is not None
        frames.append(json.loads(frame))
    return frames


def transactions(database: Database) -> int:
    return database.stats().get("requests_num", 0)


async def test_a_deactivated_queue_is_taken_from_every_anonymous_follower(
    database: Database, owner: Owner
) -> None:
    org_id = make_organization(owner)
    closing, staying = make_queue(owner, org_id), make_queue(owner, org_id)
    hub = Hub()
    watch = AccessWatch(database, hub, period_seconds=60)
    followers = [hub.connect() for _ in range(3)]
    for subscriber in followers:
        hub.subscribe(subscriber, f"queue:{closing}")
        hub.subscribe(subscriber, f"queue:{staying}")
        watch.watch(subscriber, ANONYMOUS)
        await drain(subscriber)
    owner.execute("update public.queues set is_active = false where id = %s", (closing,))
    before = transactions(database)
    await watch.recheck()
    # The three connections act as the same identity: one transaction checked them all.
    assert transactions(database) - before == 1
    for subscriber in followers:
        assert subscriber.topics == {f"queue:{staying}"}
        assert await drain(subscriber) == [
            {"type": "error", "topic": f"queue:{closing}", "reason": "not_found"}
        ]
    # A forgotten connection is no longer checked.
    watch.forget(followers[0])
    owner.execute("update public.queues set is_active = false where id = %s", (staying,))
    await watch.recheck()
    assert followers[0].topics == {f"queue:{staying}"}
    assert followers[1].topics == set()
