"""Test fixtures: a real PostgreSQL (the server in SLOTEASE_TEST_DATABASE_URL, else the embedded
one), a migrated template database built once per schema version, and one clone of it per test
module, so no test pays for migrations."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from slotease.app import create_app
from slotease.config import Settings
from slotease.db.embedded import embedded_database_url
from slotease.kit import crypto
from slotease.kit.events import EventBus
from slotease.migrations import runner

MIGRATIONS = Path(runner.__file__).parent
REQUIRE_SERVICES = os.environ.get("SLOTEASE_REQUIRE_SERVICES") == "1"
# "host:port" of a PgBouncer in transaction mode in front of the server under test: the API's
# login role connects through it, everything else directly (tests/clusters/test_pgbouncer.py).
POOLER = os.environ.get("SLOTEASE_TEST_POOLER")
DB_POOLER = "none" if POOLER is None else "transaction"
TEST_JWT_SECRET = "test-secret-" + "x" * 40
# One key for every test process and command, so that whichever seals a value, all open it.
TEST_ENCRYPTION_KEYS = "test1:" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def test_keyring() -> crypto.Keyring:
    """The keyring every app and command of the tests uses, installed for arranging and
    checking sealed values too (again for each test: an app or command a test starts
    installs its own)."""
    keyring = crypto.parse_keyring(TEST_ENCRYPTION_KEYS)
    crypto.install(keyring)
    return keyring


@pytest.fixture(scope="session")
def server_conninfo() -> str:
    """A superuser connection to the maintenance database of the server under test."""
    url = os.environ.get("SLOTEASE_TEST_DATABASE_URL")
    if url:
        return make_conninfo(url)
    data_dir = Path(os.environ.get("SLOTEASE_TEST_DATA_DIR", ".data/test")).resolve()
    return make_conninfo(embedded_database_url(data_dir))


def _with_db(conninfo: str, dbname: str) -> str:
    return make_conninfo(conninfo, dbname=dbname)


def _schema_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS.rglob("*")):
        if path.suffix in {".py", ".sql"} and "__pycache__" not in path.parts:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def template_db(server_conninfo: str) -> str:
    """The name of a database migrated to head, rebuilt only when a migration changes."""
    name = f"slotease_tmpl_{_schema_fingerprint()}"
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        # Concurrent test runs on one server build the template once.
        conn.execute("select pg_advisory_lock(hashtext('slotease-template'))")
        try:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (name,)
            ).fetchone()
            if not exists:
                building = name + "_building"
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(
                        sql.Identifier(building)
                    )
                )
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(building)))
                runner.upgrade(_with_db(server_conninfo, building))
                conn.execute(
                    sql.SQL("alter database {} rename to {}").format(
                        sql.Identifier(building), sql.Identifier(name)
                    )
                )
                conn.execute(
                    sql.SQL("alter database {} with is_template true").format(sql.Identifier(name))
                )
        finally:
            conn.execute("select pg_advisory_unlock(hashtext('slotease-template'))")
    return name


def clone_database(server_conninfo: str, template: str) -> str:
    name = f"slotease_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name


def drop_database(server_conninfo: str, name: str) -> None:
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="module")
def owner_conninfo(server_conninfo: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test module, as its owner (a superuser)."""
    name = clone_database(server_conninfo, template_db)
    yield _with_db(server_conninfo, name)
    drop_database(server_conninfo, name)


def _as_login(owner_conninfo: str, role: str) -> str:
    params = {k: str(v) for k, v in conninfo_to_dict(owner_conninfo).items()}
    params.pop("password", None)
    params["user"] = role
    return make_conninfo(**params)


@pytest.fixture(scope="module")
def app_conninfo(owner_conninfo: str) -> str:
    """The same database as the API's NOINHERIT login role (anon and authenticated only),
    through the pooler when one is given."""
    conninfo = _as_login(owner_conninfo, "slotease_app")
    if POOLER is None:
        return conninfo
    host, _, port = POOLER.rpartition(":")
    return make_conninfo(conninfo, host=host, port=port)


@pytest.fixture(scope="module")
def worker_conninfo(owner_conninfo: str) -> str:
    """The same database as the worker's NOINHERIT login role (service_role)."""
    return _as_login(owner_conninfo, "slotease_worker")


@pytest.fixture(scope="module")
def settings(
    owner_conninfo: str, app_conninfo: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return settings_for(
        owner_conninfo,
        tmp_path_factory.mktemp("data"),
        app_database_url=app_conninfo,
        db_pooler=DB_POOLER,
    )


def settings_for(owner_conninfo: str, data_dir: Path, **overrides: object) -> Settings:
    """The settings of the app under test on the database of `owner_conninfo`, its login roles
    being that database's with the user swapped; `overrides` by field name."""
    values: dict[str, object] = {
        "env": "test",
        "database_url": owner_conninfo,
        "app_database_url": _as_login(owner_conninfo, "slotease_app"),
        "worker_database_url": _as_login(owner_conninfo, "slotease_worker"),
        "jwt_secret": TEST_JWT_SECRET,
        "encryption_keys": TEST_ENCRYPTION_KEYS,
        "data_dir": data_dir,
        "rate_limit_api_key": "100000/hour",
        "rate_limit_user": "100000/hour",
        "rate_limit_anon": "100000/hour",
        "pool_min_size": 1,
        "pool_max_size": 10,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The app `client` talks to."""
    return create_app(settings)


@pytest.fixture
def bus(app: FastAPI) -> EventBus:
    """The domain-event bus of `app`, for a test to listen on."""
    events: EventBus = app.state.context.events
    return events


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in this process, with its lifespan (pool) running."""
    async with app_client(app) as http:
        yield http


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to `app` in this process, with its lifespan running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


@pytest.fixture
def owner(owner_conninfo: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser connection to this module's database, for arranging and checking data."""
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        yield conn


def wait_until_serving(url: str, process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the server `process` started answers `/ready` at `url` within `seconds`; False
    as soon as the process has ended."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis, or a skip (a failure in CI, where services are required)."""
    import redis

    url = os.environ.get("SLOTEASE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required (SLOTEASE_REQUIRE_SERVICES=1) but unreachable: {exc}")
        pytest.skip(f"Redis is not reachable at {url}")
    return url
