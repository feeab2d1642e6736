"""Reads that tolerate lag on a real streaming standby: which server answers is read from the
servers' own statement logs (`log_statement = all`), or from data only one of them holds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from slotease.app import create_app
from tests.appointments.arrange import Clinic, book, make_clinic, soon
from tests.clusters.pgcluster import Cluster
from tests.clusters.slotease import DATABASE, app_settings
from tests.factories import make_user

pytestmark = pytest.mark.anyio

AppFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


async def caught_up(standby: Cluster, primary: Cluster) -> None:
    """Wait (letting the app's checks run) until the standby replayed all the primary wrote."""
    deadline = time.monotonic() + 20
    while not replayed_everything(standby, primary):
        assert time.monotonic() < deadline, "the standby did not catch up"
        await asyncio.sleep(0.05)


def replayed_everything(standby: Cluster, primary: Cluster) -> bool:
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        row = conn.execute("select pg_current_wal_lsn()").fetchone()
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        done = conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", row).fetchone()
    return done == (True,)


def on_standby(standby: Cluster, statement: str) -> None:
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="module")
def logged_primary(slotease_primary: Cluster) -> Cluster:
    # Written to postgresql.auto.conf, which the base backup copies to the standby.
    with psycopg.connect(slotease_primary.url(), autocommit=True) as conn:
        conn.execute("alter system set log_statement = 'all'")
        conn.execute("select pg_reload_conf()")
    return slotease_primary


@pytest.fixture(scope="module")
def standby(logged_primary: Cluster, module_scratch: Path) -> Iterator[Cluster]:
    copy = logged_primary.base_backup(module_scratch, "standby", standby=True)
    copy.start()
    try:
        yield copy
    finally:
        copy.stop("immediate")


@pytest.fixture(scope="module")
def clinic(logged_primary: Cluster, standby: Cluster) -> Clinic:
    with psycopg.connect(logged_primary.url(DATABASE), autocommit=True) as owner:
        arranged = make_clinic(owner)
    wait_for(lambda: replayed_everything(standby, logged_primary), "the standby caught up")
    return arranged


@pytest.fixture
def start_app(
    logged_primary: Cluster, standby: Cluster, redis_url: str, tmp_path: Path
) -> AppFactory:
    """An app on the primary with the standby as its read replica; checks every 0.1 s."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = app_settings(
            logged_primary,
            tmp_path,
            redis_url=redis_url,
            read_database_urls=[standby.url(DATABASE, user="slotease_app")],
            replica_check_seconds=0.1,
            **overrides,
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as client,
        ):
            yield client

    return start


def served_by(cluster: Cluster, marker: str) -> bool:
    """Whether `cluster` ran a statement carrying `marker` (logged with its parameters)."""
    return marker in cluster.log.read_text(errors="replace")


async def search(client: httpx.AsyncClient, words: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/organizations", params={"q": words})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def replica_state(client: httpx.AsyncClient) -> str:
    response = await client.get("/ready")
    assert response.status_code == 200
    [replica] = response.json()["replicas"]
    state: str = replica["state"]
    return state


async def wait_for_state(client: httpx.AsyncClient, wanted: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while (state := await replica_state(client)) != wanted:
        assert time.monotonic() < deadline, f"the replica stayed {state}, never {wanted}"
        await asyncio.sleep(0.05)


async def test_lag_tolerant_reads_are_served_by_the_replica(
    start_app: AppFactory, logged_primary: Cluster, standby: Cluster, clinic: Clinic
) -> None:
    async with start_app() as client:
        await wait_for_state(client, "ok")
        ready = (await client.get("/ready")).json()
        assert ready["status"] == "ok"
        marker = f"directory{uuid.uuid4().hex}"
        assert await search(client, marker) == []
        assert served_by(standby, marker)
        assert not served_by(logged_primary, marker)
        # Every route that opted in reads on a standby, which refuses any write.
        admin = clinic.admin.headers
        day = soon(clinic).isoformat()
        org, service = clinic.org_id, clinic.service_id
        reads = [
            (f"/v1/organizations/{org}", {}),
            (f"/v1/organizations/{org}/services", {}),
            (f"/v1/services/{service}", {}),
            (f"/v1/services/{service}/ratings", {}),
            ("/v1/available-slots", {"service_id": str(service), "from": day, "to": day}),
            (f"/v1/analytics/organization/{org}/dashboard", {}),
            (f"/v1/analytics/organization/{org}/performance", {"from": day, "to": day}),
            (
                f"/v1/analytics/organization/{org}/trends",
                {"metric": "appointments", "from": day, "to": day},
            ),
        ]
        for path, params in reads:
            response = await client.get(path, params=params, headers=admin)
            assert response.status_code == 200, (path, response.text)
        missing = await client.get(f"/v1/analytics/report/{uuid.uuid4()}", headers=admin)
        assert missing.status_code == 404
        assert await replica_state(client) == "ok"


async def test_reads_move_to_the_primary_while_the_replica_lags(
    start_app: AppFactory, logged_primary: Cluster, standby: Cluster, clinic: Clinic
) -> None:
    async with start_app(replica_max_lag_seconds=1.0) as client:
        await wait_for_state(client, "ok")
        on_standby(standby, "select pg_wal_replay_pause()")
        try:
            name = f"Lagging {uuid.uuid4().hex[:8]}"
            with psycopg.connect(logged_primary.url(DATABASE), autocommit=True) as owner:
                owner.execute(
                    "insert into public.organizations (name, slug, kind, timezone)"
                    " values (%s, %s, 'clinic', 'UTC')",
                    (name, uuid.uuid4().hex),
                )
            await wait_for_state(client, "lagging")
            ready = (await client.get("/ready")).json()
            assert ready["status"] == "degraded"
            assert ready["replicas"][0]["lag_seconds"] > 1.0
            # Only the primary has the new organization.
            assert [item["name"] for item in await search(client, name)] == [name]
        finally:
            on_standby(standby, "select pg_wal_replay_resume()")
        await wait_for_state(client, "ok")
        marker = f"resumed{uuid.uuid4().hex}"
        await search(client, marker)
        assert served_by(standby, marker)


async def test_a_booking_is_read_back_from_the_primary(
    start_app: AppFactory, logged_primary: Cluster, standby: Cluster, clinic: Clinic
) -> None:
    # A lag bound the paused standby stays within, so that it keeps serving the others.
    async with start_app(replica_max_lag_seconds=60.0) as client:
        await wait_for_state(client, "ok")
        with psycopg.connect(logged_primary.url(DATABASE), autocommit=True) as owner:
            customer, other = make_user(owner), make_user(owner)
        await caught_up(standby, logged_primary)
        day = soon(clinic, days=6)
        starts_at = clinic.at(day, "10:00")
        params = {"service_id": str(clinic.service_id), "from": str(day), "to": str(day)}

        async def remaining(headers: dict[str, str]) -> int:
            response = await client.get("/v1/available-slots", params=params, headers=headers)
            assert response.status_code == 200, response.text
            # A full slot is left out of the answer.
            places = [
                s["remaining"]
                for s in response.json()["slots"]
                if s["starts_at"] == starts_at.isoformat()
            ]
            return int(places[0]) if places else 0

        assert await remaining(other.headers) == 1
        on_standby(standby, "select pg_wal_replay_pause()")
        try:
            booked = await book(client, customer, clinic, starts_at)
            assert booked.status_code == 201, booked.text
            appointment = booked.json()["id"]
            assert await remaining(customer.headers) == 0
            mine = await client.get(f"/v1/appointments/{appointment}", headers=customer.headers)
            assert mine.status_code == 200
            # The replica still serves everyone else, with what it has replayed.
            assert await replica_state(client) == "ok"
            assert await remaining(other.headers) == 1
        finally:
            on_standby(standby, "select pg_wal_replay_resume()")
        await caught_up(standby, logged_primary)
        assert await remaining(other.headers) == 0


async def test_reads_continue_on_the_primary_when_the_replica_stops(
    start_app: AppFactory, logged_primary: Cluster, standby: Cluster, clinic: Clinic
) -> None:
    async with start_app() as client:
        await wait_for_state(client, "ok")
        standby.stop("immediate")
        try:
            await wait_for_state(client, "down")
            ready = await client.get("/ready")
            assert ready.status_code == 200
            assert ready.json()["status"] == "degraded"
            marker = f"stopped{uuid.uuid4().hex}"
            assert await search(client, marker) == []
            assert served_by(logged_primary, marker)
            services = await client.get(f"/v1/organizations/{clinic.org_id}/services")
            assert services.status_code == 200
            assert [s["id"] for s in services.json()["items"]] == [str(clinic.service_id)]
        finally:
            standby.start()
        await wait_for_state(client, "ok", seconds=60)
