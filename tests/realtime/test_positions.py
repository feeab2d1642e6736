"""A client following a waiting ticket's topic sees its new position after every change of
the line ahead of it (a call, a priority walk-in, a cancellation, a transfer), though the
changes announce one `queue.moved` each and no event per waiting ticket; across server
processes too."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from slotease.queues.schemas import TicketPosition
from slotease.realtime.broker import LocalBroker, Message
from slotease.realtime.hub import Hub
from slotease.realtime.positions import PositionWatch
from tests.factories import Owner, User, make_organization, make_user
from tests.realtime.conftest import ServerFactory, receive, subscribe, ws_url
from tests.realtime.test_websocket import make_queue

pytestmark = pytest.mark.anyio


async def _join(http: httpx.AsyncClient, queue_id: uuid.UUID, user: User, **body: Any) -> str:
    joined = await http.post(f"/v1/queues/{queue_id}/tickets", json=body, headers=user.headers)
    assert joined.status_code == 201, joined.text
    ticket_id: str = joined.json()["id"]
    return ticket_id


async def _position(ws: ClientConnection, ticket_id: str) -> int:
    event = await receive(ws)
    assert event["event"] == "ticket.position", event
    assert event["payload"]["id"] == ticket_id
    assert isinstance(event["payload"]["estimated_wait_minutes"], int)
    position: int = event["payload"]["position"]
    return position


async def test_a_follower_sees_each_change_ahead_of_it(server_url: str, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    queue_id, other_queue = make_queue(owner, org_id), make_queue(owner, org_id)
    ahead = [make_user(owner) for _ in range(3)]
    holder = make_user(owner)
    async with httpx.AsyncClient(base_url=server_url) as http:
        ahead_ids = [await _join(http, queue_id, user) for user in ahead]
        ticket_id = await _join(http, queue_id, holder)
        async with connect(ws_url(server_url, holder.token)) as ws:
            await subscribe(ws, f"ticket:{ticket_id}")

            called = await http.post(
                f"/v1/queues/{queue_id}/call-next", json={"counter": "1"}, headers=admin.headers
            )
            assert called.status_code == 200
            assert await _position(ws, ticket_id) == 3

            await _join(http, queue_id, admin, priority=5)
            assert await _position(ws, ticket_id) == 4

            cancelled = await http.delete(f"/v1/tickets/{ahead_ids[1]}", headers=ahead[1].headers)
            assert cancelled.status_code == 200
            assert await _position(ws, ticket_id) == 3

            transferred = await http.post(
                "/v1/queue/update",
                json={
                    "ticket_id": ahead_ids[2],
                    "action": "transfer",
                    "target_queue_id": str(other_queue),
                },
                headers=admin.headers,
            )
            assert transferred.status_code == 200, transferred.text
            assert await _position(ws, ticket_id) == 2


async def test_positions_reach_followers_on_another_process(
    start_server: ServerFactory, redis_url: str, owner: Owner
) -> None:
    shared = {"REDIS_URL": redis_url, "SLOTEASE_REALTIME_PREFIX": f"test:{uuid.uuid4().hex}"}
    admin, first, second = make_user(owner), make_user(owner), make_user(owner)
    queue_id = make_queue(owner, make_organization(owner, admin))
    with start_server(**shared) as server_a, start_server(**shared) as server_b:
        async with httpx.AsyncClient(base_url=server_a) as http:
            await _join(http, queue_id, first)
            ticket_id = await _join(http, queue_id, second)
            async with connect(ws_url(server_b, second.token)) as ws:
                await subscribe(ws, f"ticket:{ticket_id}")
                called = await http.post(
                    f"/v1/queues/{queue_id}/call-next",
                    json={"counter": "1"},
                    headers=admin.headers,
                )
                assert called.status_code == 200
                event = await receive(ws)
    # After the ticket's own `ticket.created`, numbered by the shared counter.
    assert (event["event"], event["payload"]["position"], event["seq"]) == ("ticket.position", 1, 2)


class _Broker(LocalBroker):
    def __init__(self, hub: Hub) -> None:
        super().__init__(hub, connections_per_address=10)
        self.sent: list[Message] = []

    async def publish(self, messages: Any) -> None:
        self.sent.extend(messages)
        await super().publish(messages)


async def test_the_hub_reads_only_followed_tickets_once_per_burst() -> None:
    hub = Hub()
    broker = _Broker(hub)
    queue_id, org_id = uuid.uuid4(), uuid.uuid4()
    followed, other = uuid.uuid4(), uuid.uuid4()
    reads: list[list[uuid.UUID]] = []
    places = {followed: 4}

    async def resolve(ids: list[uuid.UUID]) -> list[TicketPosition]:
        reads.append(sorted(ids))
        return [
            TicketPosition(
                id=ticket,
                queue_id=queue_id,
                organization_id=org_id,
                user_id=None,
                position=places[ticket],
                estimated_wait_minutes=5 * (places[ticket] - 1),
            )
            for ticket in ids
            if ticket in places
        ]

    watch = PositionWatch(broker, resolve)
    hub.observe(watch)
    subscriber = hub.connect()
    hub.subscribe(subscriber, f"ticket:{followed}")
    moved = '{"first_moved":1}'
    for _ in range(3):
        hub.publish(f"queue:{queue_id}", "queue.moved", moved)
    hub.publish(f"ticket:{other}", "ticket.called", "{}")
    await watch.refresh()
    places[followed] = 3
    hub.publish(f"queue:{queue_id}", "queue.moved", moved)
    await watch.refresh()
    # Unchanged: nothing more is published.
    hub.publish(f"queue:{queue_id}", "queue.moved", moved)
    await watch.refresh()
    # Another queue moved: the followed ticket, known to wait elsewhere, is not read.
    hub.publish(f"queue:{uuid.uuid4()}", "queue.moved", moved)
    await watch.refresh()
    hub.unsubscribe(subscriber, f"ticket:{followed}")
    hub.publish(f"queue:{queue_id}", "queue.moved", moved)
    await watch.refresh()

    assert reads == [[followed]] * 3
    assert [(topic, event) for topic, event, _ in broker.sent] == [
        (f"ticket:{followed}", "ticket.position")
    ] * 2
    assert [json.loads(payload)["position"] for _, _, payload in broker.sent] == [4, 3]
