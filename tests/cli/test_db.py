"""`slotease db maintenance|stats|tune` against the module's database."""

from __future__ import annotations

from slotease.ops import maintenance, monitoring
from tests.cli.conftest import RunCli
from tests.conftest import TEST_JWT_SECRET


def test_db_maintenance_runs_every_task_once(run_cli: RunCli, owner_conninfo: str) -> None:
    env = {"DATABASE_URL": owner_conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}
    result = run_cli("db", "maintenance", env=env)
    assert result.exit_code == 0, result.output
    assert "views refreshed: yes" in result.output
    assert "partitions created for public.appointments:" in result.output
    assert f"analyzed: {', '.join(maintenance.HOT_TABLES)}" in result.output


def test_db_stats_prints_connections_queries_and_sizes(
    run_cli: RunCli, owner_conninfo: str
) -> None:
    env = {"DATABASE_URL": owner_conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}
    result = run_cli("db", "stats", env=env)
    assert result.exit_code == 0, result.output
    for heading in ("== connections by state", "== slowest queries", "== largest tables"):
        assert heading in result.output
    assert "public.appointments" in result.output
    assert "pg_stat_statements" in result.output


def test_db_tune_prints_settings_for_the_memory(run_cli: RunCli, owner_conninfo: str) -> None:
    eight_gb = monitoring.recommended_settings(8 * 1024**3, cpus=4, max_connections=100)
    assert eight_gb["shared_buffers"] == "2048MB"
    assert eight_gb["effective_cache_size"] == "6144MB"
    assert eight_gb["work_mem"] == "10MB"
    assert eight_gb["maintenance_work_mem"] == "409MB"
    assert eight_gb["random_page_cost"] == "1.1"
    assert eight_gb["max_parallel_workers_per_gather"] == "2"
    env = {"DATABASE_URL": owner_conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}
    result = run_cli("db", "tune", env=env)
    assert result.exit_code == 0, result.output
    memory = monitoring.machine_memory_bytes()
    quarter = f"{memory // 4 // 1024**2}MB"
    assert f"shared_buffers = {quarter}  (needs a restart)" in result.output
    assert "random_page_cost = 1.1" in result.output
