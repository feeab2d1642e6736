"""The API's and the worker's pools: each on its own login role, each with its timeouts in
force on every connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest

from slotease.app import create_app
from slotease.config import Settings
from slotease.db.database import ANONYMOUS, SERVICE, Database, DbIdentity, StatementTimedOut
from slotease.db.pools import api_database, worker_database
from tests.factories import Owner, make_organization, make_user

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def opened(db: Database) -> AsyncIterator[Database]:
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def _show(db: Database, *names: str, identity: DbIdentity = ANONYMOUS) -> list[str]:
    async with db.transaction(identity) as conn:
        values = []
        for name in names:
            cursor = await conn.execute(f"show {name}")
            row = await cursor.fetchone()
            assert row is not None
            values.append(row[name])
        return values


async def test_the_api_pool_cancels_a_long_statement(settings: Settings) -> None:
    quick = settings.model_copy(update={"db_statement_timeout_seconds": 0.2})
    async with opened(api_database(quick)) as db:
        assert await _show(db, "statement_timeout", "idle_in_transaction_session_timeout") == [
            "200ms",
            "1min",
        ]
        with pytest.raises(StatementTimedOut) as timed_out:
            async with db.transaction(ANONYMOUS) as conn:
                await conn.execute("select pg_sleep(2)")
        assert isinstance(timed_out.value.__cause__, psycopg.errors.QueryCanceled)
        # The connection it ran on is fine for the next request.
        assert await _show(db, "statement_timeout") == ["200ms"]


async def test_a_request_whose_statement_outruns_the_timeout_gets_a_503_problem(
    settings: Settings, owner: Owner, owner_conninfo: str
) -> None:
    org_id = make_organization(owner, make_user(owner))
    quick = settings.model_copy(update={"db_statement_timeout_seconds": 0.5})
    app = create_app(quick)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        # A transaction of the owner holds the table: the request's read waits, then is cut.
        with psycopg.connect(owner_conninfo) as blocker:
            blocker.execute("lock table public.organizations in access exclusive mode")
            slow = await http.get(f"/v1/organizations/{org_id}")
            blocker.rollback()
        fine = await http.get(f"/v1/organizations/{org_id}")
    assert slow.status_code == 503
    assert slow.headers["content-type"] == "application/problem+json"
    assert slow.headers["retry-after"] == "1"
    assert slow.json()["type"].endswith("/database-timeout")
    assert fine.status_code == 200


async def test_the_api_pool_ends_a_transaction_left_idle(settings: Settings) -> None:
    impatient = settings.model_copy(update={"db_idle_in_transaction_timeout_seconds": 0.2})
    async with opened(api_database(impatient)) as db:
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            await _pause_in_transaction(db, seconds=1)


async def _pause_in_transaction(db: Database, *, seconds: float) -> None:
    async with db.transaction(ANONYMOUS) as conn:
        await conn.execute("select 1")
        await asyncio.sleep(seconds)
        await conn.execute("select 1")


async def test_each_pool_logs_in_as_its_own_role_with_its_own_timeouts(
    settings: Settings,
) -> None:
    async with (
        opened(api_database(settings)) as api,
        opened(worker_database(settings, max_size=1)) as worker,
    ):
        async with api.transaction(ANONYMOUS) as conn:
            cursor = await conn.execute("select session_user, current_user")
            assert await cursor.fetchone() == {
                "session_user": "slotease_app",
                "current_user": "anon",
            }
        async with worker.transaction(SERVICE) as conn:
            cursor = await conn.execute("select session_user, current_user")
            assert await cursor.fetchone() == {
                "session_user": "slotease_worker",
                "current_user": "service_role",
            }
        assert await _show(api, "statement_timeout") == ["15s"]
        assert await _show(worker, "statement_timeout", identity=SERVICE) == ["10min"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with api.transaction(SERVICE):
                pass


async def test_both_pools_give_every_transaction_the_settings_the_database_reads(
    settings: Settings,
) -> None:
    configured = settings.model_copy(update={"waitlist_offer_minutes": 9})
    async with opened(api_database(configured)) as api:
        assert await _show(api, "slotease.waitlist_offer_minutes") == ["9"]
    async with opened(worker_database(configured, max_size=1)) as worker:
        assert await _show(worker, "slotease.waitlist_offer_minutes", identity=SERVICE) == ["9"]
