"""Every test here starts clusters of its own, so the suite runs them once (`make
test-clusters`), not once per database server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import run_cli  # noqa: F401 - the `slotease` command, run in-process
from tests.clusters.pgcluster import Cluster, scratch_directory


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.clusters)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory for clusters, backups and archives, removed at the end."""
    root = scratch_directory()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def primary(scratch: Path) -> Iterator[Cluster]:
    """A started cluster of its own, stopped (whatever the test did to it) at the end."""
    cluster = Cluster.create(scratch, wal_level="replica", max_wal_senders="5")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
