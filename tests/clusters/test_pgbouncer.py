"""The API through PgBouncer 1.18 in transaction mode (SLOTEASE_DB_POOLER=transaction): a part
of the API suite covering every route family passes with the API's login role connecting
through PgBouncer, and no transaction's identity is left on a server connection for the next
client. Without the setting, psycopg's prepared statements clash on shared connections."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from slotease.app import create_app
from slotease.migrations import runner
from tests.clusters.pgcluster import PGBOUNCER, Cluster, PgBouncer
from tests.conftest import REQUIRE_SERVICES, app_client, settings_for
from tests.factories import make_user

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
USERS = ("postgres", "slotease_app", "slotease_worker")

# One module or more per route family: auth, organizations and services, availability,
# booking, queues, waitlist, notifications, webhooks, analytics, realtime, health.
POOLED_SUITE = [
    "tests/auth/test_sessions.py",
    "tests/auth/test_api_keys.py",
    "tests/organizations/test_organizations.py",
    "tests/services/test_services.py",
    "tests/appointments/test_available_slots.py",
    "tests/appointments/test_booking.py",
    "tests/queues/test_line.py",
    "tests/waitlist/test_waitlist.py",
    "tests/notifications/test_routes.py",
    "tests/webhooks/test_routes.py",
    "tests/analytics/test_analytics.py",
    "tests/realtime/test_websocket.py",
    "tests/ops/test_health.py",
]


@pytest.fixture(autouse=True)
def _pgbouncer_installed() -> None:
    if not PGBOUNCER.is_file():
        if REQUIRE_SERVICES:
            pytest.fail(f"PgBouncer is required but missing at {PGBOUNCER} (make pgbouncer)")
        pytest.skip(f"PgBouncer is not installed at {PGBOUNCER} (make pgbouncer)")


@pytest.fixture
def bouncer(primary: Cluster, scratch: Path) -> Iterator[PgBouncer]:
    """One server connection per database, so consecutive clients share it."""
    pooler = PgBouncer(scratch, primary, users=USERS, pool_size=1)
    pooler.start()
    try:
        yield pooler
    finally:
        pooler.stop()


@pytest.fixture
def migrated(primary: Cluster) -> str:
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        conn.execute("create database slotease")
    runner.upgrade(primary.url("slotease"))
    return primary.url("slotease")


@pytest.mark.timeout(1500)
def test_the_api_suite_passes_through_pgbouncer(primary: Cluster, scratch: Path) -> None:
    pooler = PgBouncer(scratch, primary, users=USERS, pool_size=10)
    pooler.start()
    try:
        env = os.environ | {
            "SLOTEASE_TEST_DATABASE_URL": primary.url(),
            "SLOTEASE_TEST_POOLER": f"127.0.0.1:{pooler.port}",
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--durations=15",
                *POOLED_SUITE,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        with psycopg.connect(pooler.url("pgbouncer", "postgres"), autocommit=True) as admin:
            cursor = psycopg.ClientCursor(admin)
            cursor.execute("show stats")
            names = [column.name for column in cursor.description or []]
            served = {
                row[names.index("database")]: row[names.index("total_xact_count")]
                for row in cursor.fetchall()
            }
    finally:
        pooler.stop()
    tail = done.stdout[-3000:]
    assert done.returncode == 0, tail
    passed = re.search(r"(\d+) passed", tail)
    assert passed is not None, tail
    assert "skipped" not in tail
    # Every test module's database was reached through PgBouncer, at least once per test.
    test_databases = {name: count for name, count in served.items() if "slotease_test" in name}
    assert len(test_databases) >= len(POOLED_SUITE), served
    assert sum(test_databases.values()) >= int(passed.group(1)) > 200


async def test_no_identity_is_left_on_a_shared_server_connection(
    bouncer: PgBouncer, migrated: str, scratch: Path
) -> None:
    with psycopg.connect(migrated, autocommit=True) as owner:
        user = make_user(owner, name="Pooled")
    settings = settings_for(
        migrated,
        scratch / "data",
        app_database_url=bouncer.url("slotease", "slotease_app"),
        db_pooler="transaction",
        pool_min_size=1,
        pool_max_size=1,
    )
    async with app_client(create_app(settings)) as client:
        me = await client.get("/v1/me", headers=user.headers)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == str(user.id)
        # The next client gets the very server connection the request used (pool size 1).
        with psycopg.connect(
            bouncer.url("slotease", "slotease_app"), autocommit=True, prepare_threshold=None
        ) as other:
            row = other.execute(
                "select current_user, current_setting('role'),"
                " coalesce(current_setting('request.jwt.claims', true), ''),"
                " (select count(*) from pg_stat_activity"
                "   where usename = 'slotease_app' and datname = 'slotease')"
            ).fetchone()
    assert row == ("slotease_app", "none", "", 1)


def test_prepared_statements_clash_through_pgbouncer_unless_disabled(
    bouncer: PgBouncer, migrated: str
) -> None:
    """Why the setting exists: psycopg prepares a statement on its sixth run, on whichever
    server connection PgBouncer gave that transaction, under a name the next client reuses."""
    query = "select count(*) from pg_class"
    url = bouncer.url("slotease", "slotease_app")
    with psycopg.connect(url, autocommit=True) as first:
        for _ in range(6):
            first.execute(query)
        with psycopg.connect(url, autocommit=True) as second:
            for _ in range(5):
                second.execute(query)
            with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
                second.execute(query)
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as unprepared:
            for _ in range(6):
                assert unprepared.execute(query).fetchone() is not None
