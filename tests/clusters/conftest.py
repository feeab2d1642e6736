"""Every test here starts clusters of its own, so the suite runs them once (`make
test-clusters`), not once per database server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cli.conftest import run_cli  # noqa: F401 - the `slotease` command, run in-process
from tests.clusters.pgcluster import Cluster, scratch_directory
from tests.clusters.slotease import DATABASE, migrate
from tests.notifications.support import Mailbox, smtp_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.clusters)


@contextmanager
def scratch_root() -> Iterator[Path]:
    root = scratch_directory()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def started_cluster(root: Path) -> Iterator[Cluster]:
    cluster = Cluster.create(root, wal_level="replica", max_wal_senders="5")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory for clusters, backups and archives, removed at the end."""
    with scratch_root() as root:
        yield root


@pytest.fixture
def primary(scratch: Path) -> Iterator[Cluster]:
    """A started cluster of its own, stopped (whatever the test did to it) at the end."""
    with started_cluster(scratch) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def module_scratch() -> Iterator[Path]:
    """Like `scratch`, shared by the tests of a module."""
    with scratch_root() as root:
        yield root


@pytest.fixture(scope="module")
def slotease_primary(module_scratch: Path) -> Iterator[Cluster]:
    """A cluster holding a migrated SlotEase database (tests.clusters.slotease.DATABASE), shared
    by the tests of a module: migrating costs more than any one of them."""
    with started_cluster(module_scratch) as cluster:
        migrate(cluster)
        yield cluster


@pytest.fixture(scope="module")
def owner(slotease_primary: Cluster) -> Iterator[psycopg.Connection[Any]]:
    """The SlotEase database's owner, for arranging and checking data."""
    with psycopg.connect(slotease_primary.url(DATABASE), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[Mailbox, int]]:
    """A local SMTP server (its mailbox and port) for the processes of a module."""
    with smtp_server() as server:
        yield server
