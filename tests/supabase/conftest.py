"""A fresh Supabase-shaped database per test module (not a clone of the template: its auth
schema is Supabase Auth's), migrated with `slotease migrate --sql` as its non-superuser
owner, and the API on it logging in as `authenticator`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from slotease.config import Settings
from slotease.migrations import runner
from tests.conftest import app_client, settings_for
from tests.realtime.conftest import start_server  # noqa: F401 (a fixture, on this database)
from tests.supabase import project

# Made before SlotEase's migration, and between its revision PREVIOUS and the next: the
# back-fill must give them their profile.
EARLY_METADATA = {"name": "Grace Hopper", "phone": "+33 1 23 45 67 89"}
UPGRADED_METADATA = {"full_name": "Katherine Johnson"}
PREVIOUS = "0023"


@pytest.fixture(scope="module")
def project_name(server_conninfo: str) -> Iterator[str]:
    name = f"slotease_supabase_{uuid.uuid4().hex[:12]}"
    yield name
    project.drop_project(server_conninfo, name)


@pytest.fixture(scope="module")
def early_user(server_conninfo: str, project_name: str) -> tuple[uuid.UUID, str]:
    """The Supabase project with its auth schema; one user Supabase Auth made before
    SlotEase came."""
    project.create_project(server_conninfo, project_name)
    with psycopg.connect(
        psycopg.conninfo.make_conninfo(server_conninfo, dbname=project_name), autocommit=True
    ) as conn:
        conn.execute(f"set role {project.AUTH_ADMIN}")
        return project.insert_user(conn, metadata=EARLY_METADATA)


@pytest.fixture(scope="module")
def upgraded_user(
    server_conninfo: str, project_name: str, early_user: object
) -> tuple[uuid.UUID, str]:
    """The project with SlotEase up to 0023 (the script from an empty database, as the
    non-superuser owner), and a user Supabase Auth made then, before SlotEase's profiles
    followed its users."""
    owner = project.with_user(server_conninfo, project.OWNER, project_name)
    project.apply_as_owner(owner, runner.offline_sql(PREVIOUS))
    with psycopg.connect(
        project.with_user(server_conninfo, project.AUTH_ADMIN, project_name), autocommit=True
    ) as conn:
        return project.insert_user(conn, metadata=UPGRADED_METADATA)


@pytest.fixture(scope="module")
def supabase_owner(server_conninfo: str, project_name: str, upgraded_user: object) -> str:
    """The project migrated to head by the script of the migrations since PREVIOUS
    (`slotease migrate --sql --from`), applied as the non-superuser owner; its conninfo as
    that owner."""
    owner = project.with_user(server_conninfo, project.OWNER, project_name)
    project.apply_as_owner(owner, runner.offline_sql(start=PREVIOUS))
    return owner


@pytest.fixture
def superuser(
    server_conninfo: str, project_name: str, supabase_owner: str
) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection to the project, for checking data."""
    conninfo = psycopg.conninfo.make_conninfo(server_conninfo, dbname=project_name)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


@pytest.fixture
def auth_admin(superuser: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The same connection acting as Supabase Auth (supabase_auth_admin)."""
    superuser.execute(f"set role {project.AUTH_ADMIN}")
    yield superuser
    superuser.execute("reset role")


# The root fixtures' names, on this module's project: the API and the worker log in as
# `authenticator`, as Supabase's own API servers do.
@pytest.fixture(scope="module")
def owner_conninfo(supabase_owner: str) -> str:
    return supabase_owner


@pytest.fixture(scope="module")
def app_conninfo(supabase_owner: str) -> str:
    return project.with_user(supabase_owner, project.LOGIN)


@pytest.fixture(scope="module")
def worker_conninfo(app_conninfo: str) -> str:
    return app_conninfo


@pytest.fixture(scope="module")
def supabase_settings(
    supabase_owner: str, app_conninfo: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return settings_for(
        supabase_owner,
        Path(tmp_path_factory.mktemp("supabase")),
        app_database_url=app_conninfo,
        worker_database_url=app_conninfo,
        jwt_accepted_issuers=[project.ISSUER],
    )


@pytest.fixture
def app(supabase_settings: Settings) -> FastAPI:
    from slotease.app import create_app

    return create_app(supabase_settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as http:
        yield http
