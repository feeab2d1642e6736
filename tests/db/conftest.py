from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.db.world import World, seed


@pytest.fixture(scope="module")
def world(owner_conninfo: str) -> Iterator[World]:
    """The seeded tenants of this module's database; tests using it must not commit changes."""
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        yield seed(conn)


@pytest.fixture
def empty_database(server_conninfo: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases (from template0) and drops them after the test."""
    made: list[str] = []

    def make() -> str:
        name = f"slotease_migrate_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database {} template template0").format(sql.Identifier(name))
            )
        made.append(name)
        return make_conninfo(server_conninfo, dbname=name)

    yield make
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        for name in made:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
