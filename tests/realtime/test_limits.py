"""What one client may cost the server (message size and rate, topics, connections per address,
the HTTP rate limit), and access that ends while a connection stays open."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from slotease.auth.tokens import mint_access_token
from tests.auth.support import issue_api_key
from tests.conftest import TEST_JWT_SECRET
from tests.factories import Owner, User, add_member, make_organization, make_user
from tests.realtime.conftest import ServerFactory, emit, receive, send, subscribe, ws_url
from tests.realtime.test_websocket import make_queue

pytestmark = pytest.mark.anyio

RECHECK_SECONDS = 0.5


@pytest.fixture(scope="module")
def limited_url(start_server: ServerFactory) -> Iterator[str]:
    with start_server(
        SLOTEASE_REALTIME_CONNECTIONS_PER_ADDRESS="3",
        SLOTEASE_REALTIME_MESSAGES_PER_SECOND="5",
        SLOTEASE_REALTIME_MESSAGE_BURST="20",
        SLOTEASE_REALTIME_RECHECK_SECONDS=str(RECHECK_SECONDS),
    ) as url:
        yield url


async def closed_with(ws: ClientConnection) -> int:
    """The close code the server ends `ws` with, reading (and dropping) any frames before it."""
    with pytest.raises(ConnectionClosed) as closed:
        await read_until_closed(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def read_until_closed(ws: ClientConnection) -> None:
    while True:
        await receive(ws)


async def still_open(ws: ClientConnection) -> None:
    await send(ws, {"type": "ping"})
    assert await receive(ws) == {"type": "pong"}


def organization_summary(org_id: uuid.UUID) -> dict[str, Any]:
    return {
        "queue_id": str(uuid.uuid4()),
        "organization_id": str(org_id),
        "waiting_count": 1,
        "now_serving": [],
    }


async def test_a_message_over_the_size_limit_closes_with_1009(limited_url: str) -> None:
    async with connect(ws_url(limited_url)) as ws:
        # Valid JSON, within the default limit of 8 KiB once and beyond it the second time.
        await ws.send(" " * 8000 + '{"type":"ping"}')
        assert await receive(ws) == {"type": "pong"}
        await ws.send(" " * 8200 + '{"type":"ping"}')
        assert await closed_with(ws) == 1009


async def test_a_message_flood_closes_with_1008(limited_url: str) -> None:
    async with connect(ws_url(limited_url)) as ws:
        # The burst (20) passes; a sustained flood beyond it does not.
        for _ in range(20):
            await send(ws, {"type": "ping"})
        for _ in range(20):
            assert await receive(ws) == {"type": "pong"}
        for _ in range(50):
            await send(ws, {"type": "ping"})
        assert await closed_with(ws) == 1008
    async with connect(ws_url(limited_url)) as calm:
        for _ in range(3):
            await still_open(calm)
            await asyncio.sleep(0.25)


async def test_many_topics_are_checked_in_one_subscribe_up_to_100_per_connection(
    limited_url: str, owner: Owner
) -> None:
    org_id = make_organization(owner)
    queues = [make_queue(owner, org_id) for _ in range(101)]
    holder = make_user(owner)
    async with connect(ws_url(limited_url)) as ws:
        # One message, one check: a malformed topic is answered at once, the others in order.
        topics = [f"queue:{queue_id}" for queue_id in queues[:96]]
        mixed = [f"ticket:{uuid.uuid4()}", f"queue:{uuid.uuid4()}", "queue:x", f"user:{holder.id}"]
        await send(
            ws,
            {"type": "subscribe", "topics": [{"topic": topic} for topic in [*topics, *mixed]]},
        )
        answers = [await receive(ws) for _ in range(100)]
        assert [(a["type"], a["topic"], a.get("reason")) for a in answers] == [
            ("error", "queue:x", "bad_request"),
            *[("subscribed", topic, None) for topic in topics],
            ("error", mixed[0], "forbidden"),
            ("error", mixed[1], "not_found"),
            ("error", mixed[3], "forbidden"),
        ]
        for queue_id in queues[96:100]:
            assert (await subscribe(ws, f"queue:{queue_id}"))["type"] == "subscribed"
        # The connection holds 100 topics: one more is refused, one it holds is answered.
        assert await subscribe(ws, f"queue:{queues[100]}") == {
            "type": "error",
            "topic": f"queue:{queues[100]}",
            "reason": "bad_request",
        }
        assert (await subscribe(ws, f"queue:{queues[0]}"))["type"] == "subscribed"
        await send(ws, {"type": "unsubscribe", "topic": f"queue:{queues[0]}"})
        assert (await subscribe(ws, f"queue:{queues[100]}"))["type"] == "subscribed"
        for malformed in (
            {"type": "subscribe", "topic": topics[0], "topics": [{"topic": topics[0]}]},
            {"type": "subscribe", "topics": []},
            {"type": "subscribe", "topics": [{"topic": topics[0]}], "since_seq": 1},
            {"type": "subscribe", "topics": [{"topic": topic} for topic in topics[:2] * 51]},
        ):
            await send(ws, malformed)
            assert await receive(ws) == {"type": "error", "topic": None, "reason": "bad_request"}


async def test_connections_per_address_are_capped(limited_url: str) -> None:
    async with connect(ws_url(limited_url)) as first:
        async with connect(ws_url(limited_url)), connect(ws_url(limited_url)):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url(limited_url)):
                    pass
            assert refused.value.response.status_code == 429
            await still_open(first)
        # The places of closed connections are free again.
        deadline = time.monotonic() + 3
        while True:
            try:
                async with connect(ws_url(limited_url)) as again:
                    await still_open(again)
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)


async def test_the_upgrade_counts_against_the_http_rate_limit(
    start_server: ServerFactory,
) -> None:
    with start_server(SLOTEASE_RATE_LIMIT_ANON="3/minute") as url:
        for _ in range(3):
            async with connect(ws_url(url)) as ws:
                await still_open(ws)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(url)):
                pass
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"]
        async with httpx.AsyncClient(base_url=url) as http:
            assert (
                await http.get("/v1/queues/00000000-0000-0000-0000-000000000000")
            ).status_code == 429


async def test_a_removed_staff_member_stops_receiving_organization_events(
    limited_url: str, owner: Owner
) -> None:
    staff = make_user(owner)
    org_id = make_organization(owner, make_user(owner))
    add_member(owner, org_id, staff, "staff")
    topic = f"organization:{org_id}"
    async with connect(ws_url(limited_url, staff.token)) as ws:
        assert (await subscribe(ws, topic))["type"] == "subscribed"
        await emit(limited_url, "queue.updated", organization_summary(org_id))
        assert (await receive(ws))["event"] == "queue.updated"
        owner.execute(
            "delete from public.organization_members where organization_id = %s and user_id = %s",
            (org_id, staff.id),
        )
        removed = time.monotonic()
        assert await receive(ws) == {"type": "error", "topic": topic, "reason": "forbidden"}
        assert time.monotonic() - removed < RECHECK_SECONDS + 1
        await emit(limited_url, "queue.updated", organization_summary(org_id))
        await still_open(ws)


async def test_a_revoked_api_key_stops_receiving_organization_events(
    limited_url: str, owner: Owner
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    topic = f"organization:{org_id}"
    async with httpx.AsyncClient(base_url=limited_url) as http:
        key = await issue_api_key(http, org_id, admin, role="staff")
    async with connect(ws_url(limited_url), additional_headers={"X-API-Key": key["key"]}) as ws:
        assert (await subscribe(ws, topic))["type"] == "subscribed"
        owner.execute("update public.api_keys set revoked_at = now() where id = %s", (key["id"],))
        assert await receive(ws) == {"type": "error", "topic": topic, "reason": "forbidden"}
        await emit(limited_url, "queue.updated", organization_summary(org_id))
        await still_open(ws)


async def test_a_connection_ends_when_its_token_expires(limited_url: str, owner: Owner) -> None:
    user: User = make_user(owner)
    token = mint_access_token(TEST_JWT_SECRET, user_id=user.id, email=user.email, ttl_seconds=2)
    async with connect(ws_url(limited_url, token)) as ws:
        assert (await subscribe(ws, f"user:{user.id}"))["type"] == "subscribed"
        assert await receive(ws) == {"type": "error", "topic": None, "reason": "token_expired"}
        assert await closed_with(ws) == 4401
