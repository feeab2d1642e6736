"""Two server processes sharing Redis: events and their seq reach clients on either one."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.factories import Owner, make_organization
from tests.realtime.conftest import ServerFactory, emit, receive, subscribe, ws_url
from tests.realtime.test_websocket import make_queue

pytestmark = pytest.mark.anyio


async def test_an_event_emitted_in_one_process_reaches_clients_of_another(
    start_server: ServerFactory, redis_url: str, owner: Owner
) -> None:
    shared = {"REDIS_URL": redis_url, "SLOTEASE_REALTIME_PREFIX": f"test:{uuid.uuid4().hex}"}
    queue_id = make_queue(owner, make_organization(owner))
    topic = f"queue:{queue_id}"
    summary = {"queue_id": str(queue_id), "organization_id": str(uuid.uuid4()), "now_serving": []}
    with start_server(**shared) as server_a, start_server(**shared) as server_b:
        async with connect(ws_url(server_a)) as on_a, connect(ws_url(server_b)) as on_b:
            await subscribe(on_a, topic)
            await subscribe(on_b, topic)
            await emit(server_a, "queue.updated", {**summary, "waiting_count": 1})
            await emit(server_b, "queue.updated", {**summary, "waiting_count": 2})
            await emit(server_a, "queue.updated", {**summary, "waiting_count": 3})
            for ws in (on_a, on_b):
                events = [await receive(ws) for _ in range(3)]
                assert [(e["seq"], e["payload"]["waiting_count"]) for e in events] == [
                    (1, 1),
                    (2, 2),
                    (3, 3),
                ]
        # A client reconnecting to the other process resumes from the shared seq.
        async with connect(ws_url(server_b)) as again:
            await subscribe(again, topic, since_seq=1)
            replayed = [await receive(again) for _ in range(2)]
            assert [e["seq"] for e in replayed] == [2, 3]


async def test_the_connection_cap_per_address_holds_across_processes(
    start_server: ServerFactory, redis_url: str
) -> None:
    shared = {
        "REDIS_URL": redis_url,
        "SLOTEASE_REALTIME_PREFIX": f"test:{uuid.uuid4().hex}",
        "SLOTEASE_REALTIME_CONNECTIONS_PER_ADDRESS": "2",
    }
    with start_server(**shared) as server_a, start_server(**shared) as server_b:
        async with connect(ws_url(server_a)):
            async with connect(ws_url(server_b)):
                for server in (server_a, server_b):
                    with pytest.raises(InvalidStatus) as refused:
                        async with connect(ws_url(server)):
                            pass
                    assert refused.value.response.status_code == 429
            # The place the other process held is free once its connection closed.
            deadline = time.monotonic() + 3
            while True:
                try:
                    async with connect(ws_url(server_a)):
                        break
                except InvalidStatus:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
