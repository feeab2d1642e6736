"""Two `slotease serve` and two `slotease worker` processes on one database and one Redis
behave as one system: one rate limit, one availability cache, one realtime stream, and each
job run once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect

from tests.appointments.arrange import Clinic, make_clinic, soon
from tests.clusters.pgcluster import Cluster
from tests.clusters.slotease import confirmed, environment, serving, working
from tests.factories import User, make_user
from tests.notifications.support import Mailbox
from tests.realtime.conftest import receive, subscribe, ws_url

pytestmark = pytest.mark.anyio

USER_LIMIT = 12


@pytest.fixture(scope="module")
def system(
    slotease_primary: Cluster,
    redis_url: str,
    mail: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    """The base URLs of the two API processes; the two workers run beside them."""
    logs = tmp_path_factory.mktemp("logs")
    env = environment(
        slotease_primary,
        tmp_path_factory.mktemp("data"),
        REDIS_URL=redis_url,
        SLOTEASE_RATE_LIMIT_USER=f"{USER_LIMIT}/minute",
        SLOTEASE_REALTIME_PREFIX=f"slotease:rt:{uuid.uuid4().hex[:8]}",
        SLOTEASE_SMTP_HOST="127.0.0.1",
        SLOTEASE_SMTP_PORT=str(mail[1]),
        SLOTEASE_SMTP_STARTTLS="false",
        SLOTEASE_POOL_MIN_SIZE="1",
        SLOTEASE_POOL_MAX_SIZE="5",
    )
    with (
        serving(env, logs) as (api_a, _),
        serving(env, logs) as (api_b, _),
        working(env, logs, "one"),
        working(env, logs, "two"),
    ):
        yield api_a, api_b


def book(base: str, user: User, clinic: Clinic, starts_at: Any) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/appointments",
        json={"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat()},
        headers=user.headers,
        timeout=10,
    )


def test_the_rate_limit_is_shared_by_both_apis(
    system: tuple[str, str], owner: psycopg.Connection[Any]
) -> None:
    user = make_user(owner)
    answers = [
        httpx.get(f"{system[n % 2]}/v1/me/invitations", headers=user.headers).status_code
        for n in range(USER_LIMIT + 2)
    ]
    assert answers == [200] * USER_LIMIT + [429, 429]


def test_a_booking_on_one_api_is_seen_at_once_on_the_other(
    system: tuple[str, str], owner: psycopg.Connection[Any]
) -> None:
    api_a, api_b = system
    clinic = make_clinic(owner)
    day = soon(clinic)
    starts_at = clinic.at(day, "11:00")
    params = {"service_id": str(clinic.service_id), "from": str(day), "to": str(day)}

    def offered_on_b() -> bool:
        response = httpx.get(f"{api_b}/v1/available-slots", params=params)
        assert response.status_code == 200
        return starts_at.isoformat() in {slot["starts_at"] for slot in response.json()["slots"]}

    # Twice: the second answer comes from the shared cache.
    assert offered_on_b()
    assert offered_on_b()
    assert book(api_a, make_user(owner), clinic, starts_at).status_code == 201
    assert not offered_on_b()


async def test_an_event_of_one_api_reaches_a_websocket_on_the_other(
    system: tuple[str, str], owner: psycopg.Connection[Any]
) -> None:
    api_a, api_b = system
    clinic = make_clinic(owner)
    topic = f"organization:{clinic.org_id}"
    async with connect(ws_url(api_b, clinic.admin.token)) as ws:
        assert await subscribe(ws, topic) == {"type": "subscribed", "topic": topic}
        starts_at = clinic.at(soon(clinic), "12:00")
        booked = await asyncio.to_thread(book, api_a, make_user(owner), clinic, starts_at)
        assert booked.status_code == 201
        event = await receive(ws)
    assert event["event"] == "appointment.created"
    assert event["topic"] == topic
    assert event["payload"]["id"] == booked.json()["id"]


def test_jobs_enqueued_by_either_api_run_once_across_both_workers(
    system: tuple[str, str], owner: psycopg.Connection[Any], mail: tuple[Mailbox, int]
) -> None:
    mailbox = mail[0]
    clinic = make_clinic(owner)
    day = soon(clinic, days=3)
    customers = [make_user(owner) for _ in range(16)]
    for n, customer in enumerate(customers):
        starts_at = clinic.at(day, f"{9 + n // 2:02d}:{30 * (n % 2):02d}")
        assert book(system[n % 2], customer, clinic, starts_at).status_code == 201

    addresses = {c.email for c in customers}

    deadline = time.monotonic() + 60
    while len(confirmed(mailbox, addresses)) < len(customers):
        assert time.monotonic() < deadline, (
            f"only {len(confirmed(mailbox, addresses))} confirmations arrived"
        )
        time.sleep(0.2)
    # Time for a duplicate to show up, had a job run twice.
    time.sleep(2)
    assert sorted(confirmed(mailbox, addresses)) == sorted(addresses)
    emails = owner.execute(
        "select user_id, count(*) from public.notifications"
        " where channel = 'email' and user_id = any(%s) group by user_id",
        ([c.id for c in customers],),
    ).fetchall()
    assert sorted(count for _, count in emails) == [1] * len(customers)
