"""The WebSocket endpoint end to end: a real server process and real WebSocket clients."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.factories import Owner, User, add_member, make_organization, make_user
from tests.realtime.conftest import emit, receive, send, subscribe, ws_url

pytestmark = pytest.mark.anyio


def make_queue(owner: Owner, org_id: uuid.UUID, *, active: bool = True) -> uuid.UUID:
    row = owner.execute(
        "insert into public.queues (organization_id, name, prefix, is_active)"
        " values (%s, 'Reception', 'A', %s) returning id",
        (org_id, active),
    ).fetchone()
    assert row is not None
    queue_id: uuid.UUID = row[0]
    return queue_id


def make_ticket(owner: Owner, org_id: uuid.UUID, queue_id: uuid.UUID, holder: User) -> uuid.UUID:
    row = owner.execute(
        "insert into public.tickets (organization_id, queue_id, user_id, service_date, number)"
        " values (%s, %s, %s, current_date,"
        " (select coalesce(max(number), 0) + 1 from public.tickets where queue_id = %s))"
        " returning id",
        (org_id, queue_id, holder.id, queue_id),
    ).fetchone()
    assert row is not None
    ticket_id: uuid.UUID = row[0]
    return ticket_id


def ticket_payload(
    ticket_id: uuid.UUID, queue_id: uuid.UUID, org_id: uuid.UUID, holder: User
) -> dict[str, Any]:
    return {
        "id": str(ticket_id),
        "queue_id": str(queue_id),
        "organization_id": str(org_id),
        "user_id": str(holder.id),
        "number": 7,
        "status": "called",
        "counter": "Desk 2",
        "priority": 0,
        "position": 0,
        "estimated_wait_minutes": 0,
    }


async def test_ping_and_malformed_messages_keep_the_connection_open(
    anon_ws: ClientConnection,
) -> None:
    await send(anon_ws, {"type": "ping"})
    assert await receive(anon_ws) == {"type": "pong"}
    await anon_ws.send("{not json")
    assert await receive(anon_ws) == {"type": "error", "topic": None, "reason": "bad_request"}
    await send(anon_ws, {"type": "shout", "topic": "queue:x"})
    assert await receive(anon_ws) == {"type": "error", "topic": None, "reason": "bad_request"}
    for topic in ("queue:not-a-uuid", f"planet:{uuid.uuid4()}", "queue"):
        assert await subscribe(anon_ws, topic) == {
            "type": "error",
            "topic": topic,
            "reason": "bad_request",
        }
    await send(anon_ws, {"type": "ping"})
    assert await receive(anon_ws) == {"type": "pong"}


async def test_a_bad_token_closes_with_4401(server_url: str) -> None:
    async with connect(ws_url(server_url, "not-a-token")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_topic_authorization_follows_the_policies(server_url: str, owner: Owner) -> None:
    admin, holder, stranger = make_user(owner), make_user(owner), make_user(owner)
    org_id = make_organization(owner, admin)
    other_org = make_organization(owner, make_user(owner))
    queue_id = make_queue(owner, org_id)
    hidden_queue = make_queue(owner, org_id, active=False)
    ticket_id = make_ticket(owner, org_id, queue_id, holder)

    def refused(topic: str, reason: str) -> dict[str, Any]:
        return {"type": "error", "topic": topic, "reason": reason}

    async with connect(ws_url(server_url, stranger.token)) as ws:
        for topic, reason in (
            (f"organization:{org_id}", "forbidden"),
            (f"organization:{uuid.uuid4()}", "not_found"),
            (f"ticket:{ticket_id}", "not_found"),
            (f"user:{holder.id}", "forbidden"),
            (f"queue:{hidden_queue}", "not_found"),
            (f"appointment:{uuid.uuid4()}", "not_found"),
        ):
            assert await subscribe(ws, topic) == refused(topic, reason)
        assert await subscribe(ws, f"user:{stranger.id}") == {
            "type": "subscribed",
            "topic": f"user:{stranger.id}",
        }
    async with connect(ws_url(server_url)) as ws:
        assert await subscribe(ws, f"ticket:{ticket_id}") == refused(
            f"ticket:{ticket_id}", "forbidden"
        )
        assert await subscribe(ws, f"organization:{org_id}") == refused(
            f"organization:{org_id}", "forbidden"
        )
        assert (await subscribe(ws, f"queue:{queue_id}"))["type"] == "subscribed"
    async with connect(ws_url(server_url, holder.token)) as ws:
        assert (await subscribe(ws, f"ticket:{ticket_id}"))["type"] == "subscribed"
    async with connect(ws_url(server_url, admin.token)) as ws:
        for topic in (f"ticket:{ticket_id}", f"organization:{org_id}", f"queue:{hidden_queue}"):
            assert await subscribe(ws, topic) == {"type": "subscribed", "topic": topic}
        assert await subscribe(ws, f"organization:{other_org}") == refused(
            f"organization:{other_org}", "forbidden"
        )


async def test_the_public_queue_view_carries_no_personal_data(
    server_url: str, owner: Owner
) -> None:
    admin, holder, staff = make_user(owner), make_user(owner), make_user(owner)
    org_id = make_organization(owner, admin)
    add_member(owner, org_id, staff, "staff")
    queue_id = make_queue(owner, org_id)
    ticket_id = make_ticket(owner, org_id, queue_id, holder)
    payload = ticket_payload(ticket_id, queue_id, org_id, holder)
    async with (
        connect(ws_url(server_url)) as public,
        connect(ws_url(server_url, holder.token)) as mine,
        connect(ws_url(server_url, staff.token)) as desk,
    ):
        await subscribe(public, f"queue:{queue_id}")
        await subscribe(mine, f"ticket:{ticket_id}")
        await subscribe(desk, f"organization:{org_id}")
        called = await emit(server_url, "ticket.called", payload, token=staff.token)
        assert called.status_code == 204
        board = await receive(public)
        assert board["event"] == "ticket.called"
        assert board["payload"] == {"number": 7, "status": "called", "counter": "Desk 2"}
        assert (await receive(mine))["payload"] == payload
        assert (await receive(desk))["payload"] == payload
        summary = {
            "queue_id": str(queue_id),
            "organization_id": str(org_id),
            "waiting_count": 3,
            "now_serving": [7],
        }
        await emit(server_url, "queue.updated", summary)
        assert (await receive(public))["payload"] == summary
        assert (await receive(desk))["payload"] == summary
        assert "user_id" not in str(board)
        assert "customer_id" not in str(board)


async def test_seq_rises_and_since_seq_replays_or_asks_for_a_resync(
    server_url: str, owner: Owner
) -> None:
    queue_id = make_queue(owner, make_organization(owner))
    topic = f"queue:{queue_id}"
    summary = {"queue_id": str(queue_id), "organization_id": str(uuid.uuid4()), "now_serving": []}
    async with connect(ws_url(server_url)) as ws:
        await subscribe(ws, topic)
        for waiting in range(1, 6):
            await emit(server_url, "queue.updated", {**summary, "waiting_count": waiting})
        seqs = [(await receive(ws))["seq"] for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    async with connect(ws_url(server_url)) as ws:
        # The server keeps three events per topic (SLOTEASE_REALTIME_REPLAY=3): 3, 4 and 5.
        await subscribe(ws, topic, since_seq=3)
        replayed = [await receive(ws) for _ in range(2)]
        assert [(e["seq"], e["payload"]["waiting_count"]) for e in replayed] == [(4, 4), (5, 5)]
        await subscribe(ws, topic, since_seq=1)
        assert await receive(ws) == {
            "type": "event",
            "topic": topic,
            "event": "resync",
            "payload": {},
            "seq": 5,
        }
        await subscribe(ws, topic, since_seq=5)
        await send(ws, {"type": "ping"})
        assert await receive(ws) == {"type": "pong"}


async def test_unsubscribe_stops_the_events(
    anon_ws: ClientConnection, server_url: str, owner: Owner
) -> None:
    queue_id = make_queue(owner, make_organization(owner))
    summary = {
        "queue_id": str(queue_id),
        "organization_id": str(uuid.uuid4()),
        "waiting_count": 1,
        "now_serving": [],
    }
    await subscribe(anon_ws, f"queue:{queue_id}")
    await send(anon_ws, {"type": "unsubscribe", "topic": f"queue:{queue_id}"})
    await send(anon_ws, {"type": "ping"})
    assert await receive(anon_ws) == {"type": "pong"}
    await emit(server_url, "queue.updated", summary)
    await send(anon_ws, {"type": "ping"})
    assert await receive(anon_ws) == {"type": "pong"}


async def test_events_of_a_rolled_back_transaction_never_arrive(
    anon_ws: ClientConnection, server_url: str, owner: Owner
) -> None:
    queue_id = make_queue(owner, make_organization(owner))
    summary = {"queue_id": str(queue_id), "organization_id": str(uuid.uuid4()), "now_serving": []}
    await subscribe(anon_ws, f"queue:{queue_id}")
    failed = await emit(
        server_url, "queue.updated", {**summary, "waiting_count": 99}, rollback=True
    )
    assert failed.status_code == 409
    await emit(server_url, "queue.updated", {**summary, "waiting_count": 1})
    first = await receive(anon_ws)
    assert (first["seq"], first["payload"]["waiting_count"]) == (1, 1)


async def test_a_holder_sees_its_position_drop_within_a_second_of_a_call_next(
    server_url: str, owner: Owner
) -> None:
    admin, first, second = make_user(owner), make_user(owner), make_user(owner)
    org_id = make_organization(owner, admin)
    queue_id = make_queue(owner, org_id)
    async with httpx.AsyncClient(base_url=server_url) as http:
        for holder in (first, second):
            joined = await http.post(
                f"/v1/queues/{queue_id}/tickets", json={}, headers=holder.headers
            )
            assert joined.status_code == 201, joined.text
        ticket_id = joined.json()["id"]
        async with connect(ws_url(server_url, second.token)) as ws:
            await subscribe(ws, f"ticket:{ticket_id}")
            started = time.perf_counter()
            called = await http.post(
                f"/v1/queues/{queue_id}/call-next",
                json={"counter": "Desk 1"},
                headers=admin.headers,
            )
            assert called.status_code == 200, called.text
            event = await receive(ws)
            assert time.perf_counter() - started < 1
    assert event["event"] == "ticket.position"
    assert event["payload"]["id"] == ticket_id
    assert event["payload"]["position"] == 1
