from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.db.world import World, seed


@pytest.fixture(scope="module")
def world(owner_conninfo: str) -> Iterator[World]:
    """The seeded tenants of this module's database; tests using it must not commit changes."""
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        yield seed(conn)
