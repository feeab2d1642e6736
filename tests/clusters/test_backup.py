"""A backup of a database with the demo data, restored into a new cluster that has none of
SlotEase's roles: every table holds the same rows, and the API's roles work on it."""

from __future__ import annotations

from pathlib import Path

import psycopg

from slotease.migrations import runner
from tests.cli.conftest import RunCli
from tests.clusters.pgcluster import Cluster, table_fingerprints
from tests.conftest import TEST_ENCRYPTION_KEYS, TEST_JWT_SECRET

ROLES = ("anon", "authenticated", "service_role", "slotease_app", "slotease_worker")


def _roles(cluster: Cluster) -> list[str]:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        rows = conn.execute(
            "select rolname from pg_roles where rolname = any(%s) order by 1", (list(ROLES),)
        ).fetchall()
    return [row[0] for row in rows]


def _create_database(cluster: Cluster, name: str) -> str:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"create database {name}")
    return cluster.url(name)


def test_a_demo_backup_restores_into_a_cluster_without_the_roles(
    run_cli: RunCli, primary: Cluster, scratch: Path
) -> None:
    source = _create_database(primary, "slotease")
    env: dict[str, str | None] = {
        "DATABASE_URL": source,
        "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET,
        "SLOTEASE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,
    }
    seeded = run_cli("demo", env=env)
    assert seeded.exit_code == 0, seeded.output
    backup_dir = scratch / "backup"
    backed_up = run_cli("db", "backup", "--to", str(backup_dir), env=env)
    assert backed_up.exit_code == 0, backed_up.output

    fresh = Cluster.create(scratch, "fresh")
    fresh.start()
    try:
        assert _roles(fresh) == []
        target = _create_database(fresh, "restored")
        restored = run_cli("db", "restore", str(backup_dir), env=env | {"DATABASE_URL": target})
        assert restored.exit_code == 0, restored.output
        assert f"at revision {runner.head()}" in restored.output

        assert _roles(fresh) == sorted(ROLES)
        expected = table_fingerprints(source)
        assert table_fingerprints(target) == expected
        assert sum(count for count, _ in expected.values()) > 1000
        # The API's login role acts as anon on the restored database and sees the directory.
        with psycopg.connect(fresh.url("restored", user="slotease_app")) as conn:
            conn.execute("set local role anon")
            row = conn.execute("select count(*) from public.organizations").fetchone()
        assert row is not None
        assert row[0] == expected["public.organizations"][0]
    finally:
        fresh.stop("immediate")
