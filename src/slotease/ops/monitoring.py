"""Monitoring: database figures for /metrics, `slotease db stats` and `slotease db tune`, and
the alert rules that notify platform admins."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from slotease.db.database import SERVICE, Connection, Database
from slotease.kit.background import running
from slotease.ops import repository

log = logging.getLogger(__name__)

PROCRASTINATE_JOBS = "public.procrastinate_jobs"


async def database_gauges(conn: Connection) -> list[Metric]:
    """Queue lengths, and the job queue when procrastinate's tables exist: counts, never rows,
    readable by the API role through one function of the database, and aggregated over all
    tenants, so a scrape names no organization's queue."""
    counts = await repository.gauge_counts(conn, 1)
    longest = max((row["n"] for row in counts if row["metric"] == "waiting_by_queue"), default=0)
    total = sum(row["n"] for row in counts if row["metric"] == "waiting_total")
    families: list[Metric] = [
        GaugeMetricFamily(
            "slotease_queue_waiting_tickets_max",
            "Tickets waiting in the longest queue.",
            value=longest,
        ),
        GaugeMetricFamily(
            "slotease_queue_waiting_tickets_total", "Tickets waiting in all queues.", value=total
        ),
    ]
    by_status = [row for row in counts if row["metric"] == "jobs_by_status"]
    if by_status:
        jobs = GaugeMetricFamily(
            "slotease_jobs", "Background jobs by status (procrastinate).", labels=["status"]
        )
        for row in by_status:
            jobs.add_metric([row["label"]], row["n"])
        families.append(jobs)
    return families


def websocket_gauge(connections: int) -> Metric:
    return GaugeMetricFamily(
        "slotease_websocket_connections",
        "WebSocket connections open on this process.",
        value=connections,
    )


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def exposition(families: list[Metric]) -> bytes:
    registry = CollectorRegistry()
    registry.register(_Fixed(families))
    return generate_latest(registry)


# `slotease db stats` -------------------------------------------------------------------------


async def stats_report(conn: Connection) -> list[str]:
    lines = ["== connections by state"]
    lines += [
        f"{row['state']:<30} {row['n']:>6}" for row in await repository.connections_by_state(conn)
    ]
    lines.append(f"{'max_connections':<30} {await repository.max_connections(conn) or '?':>6}")

    lines.append("== slowest queries (mean time)")
    if await repository.has_pg_stat_statements(conn):
        lines += [
            f"{row['mean_ms']:>10} ms  {row['calls']:>8} calls  {row['query']}"
            for row in await repository.slowest_queries(conn, 10)
        ]
    else:
        lines.append(
            "pg_stat_statements is not installed: add it to shared_preload_libraries and"
            " run `create extension pg_stat_statements` to see the slowest queries."
        )

    lines.append("== largest tables (with indexes and partitions)")
    lines += [
        f"{row['name']:<40} {row['size']:>10}" for row in await repository.largest_tables(conn, 15)
    ]
    return lines


# `slotease db tune` --------------------------------------------------------------------------


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _mb(value: float) -> str:
    return f"{max(1, int(value // (1024 * 1024)))}MB"


def recommended_settings(
    memory_bytes: int, cpus: int, max_connections: int = 100
) -> dict[str, str]:
    """Server settings for a machine dedicated to PostgreSQL with SSD storage: shared_buffers
    a quarter of memory, the planner told of three quarters as cache, work_mem sized so that
    every connection can sort at once in a quarter of memory."""
    return {
        "max_connections": str(max_connections),
        "shared_buffers": _mb(memory_bytes * 0.25),
        "effective_cache_size": _mb(memory_bytes * 0.75),
        "work_mem": _mb(max(4 * 1024 * 1024, memory_bytes * 0.25 / (max_connections * 2))),
        "maintenance_work_mem": _mb(min(2 * 1024**3, memory_bytes * 0.05)),
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "wal_buffers": "16MB",
        "checkpoint_completion_target": "0.9",
        "default_statistics_target": "100",
        "max_worker_processes": str(max(8, cpus)),
        "max_parallel_workers": str(cpus),
        "max_parallel_workers_per_gather": str(max(1, cpus // 2)),
    }


# Changing these needs a restart, not only a reload.
RESTART_SETTINGS = frozenset(
    {"max_connections", "shared_buffers", "wal_buffers", "max_worker_processes"}
)


async def apply_settings(conn: Connection, settings: Mapping[str, str]) -> None:
    """ALTER SYSTEM each setting, then reload. `conn` must be a superuser in autocommit mode
    (ALTER SYSTEM cannot run inside a transaction)."""
    for name, value in settings.items():
        await repository.alter_system(conn, name, value)
    await repository.reload_configuration(conn)


# Alerts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertSignals:
    error_rate: float  # share of answers that were 5xx
    pool_saturation: float  # share of the pool in use, with waiters counted
    failed_jobs: int
    replication_lag_seconds: float | None


@dataclass(frozen=True)
class AlertThresholds:
    error_rate: float = 0.05
    pool_saturation: float = 0.9
    failed_jobs: int = 1
    replication_lag_seconds: float = 30.0


def firing(signals: AlertSignals, limits: AlertThresholds) -> list[tuple[str, str]]:
    """(alert key, message) of every rule over its threshold."""
    alerts = []
    if signals.error_rate > limits.error_rate:
        alerts.append(("error_rate", f"{signals.error_rate:.1%} of requests failed with 5xx."))
    if signals.pool_saturation > limits.pool_saturation:
        alerts.append(
            ("pool_saturation", f"The connection pool is {signals.pool_saturation:.0%} in use.")
        )
    if signals.failed_jobs >= limits.failed_jobs:
        alerts.append(("job_failures", f"{signals.failed_jobs} background jobs have failed."))
    lag = signals.replication_lag_seconds
    if lag is not None and lag > limits.replication_lag_seconds:
        alerts.append(("replication_lag", f"A replica is {lag:.0f} s behind."))
    return alerts


def error_rate(registry: CollectorRegistry) -> float:
    """The share of 5xx answers among all answered since the process started."""
    total = failed = 0.0
    for family in registry.collect():
        if family.name != "slotease_http_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                total += sample.value
                failed += sample.value if sample.labels["status"].startswith("5") else 0
    return failed / total if total else 0.0


def pool_saturation(stats: Mapping[str, int], max_size: int) -> float:
    busy = stats.get("pool_size", 0) - stats.get("pool_available", 0)
    return (busy + stats.get("requests_waiting", 0)) / max_size if max_size else 0.0


async def collect_signals(
    conn: Connection, *, error_rate: float, saturation: float
) -> AlertSignals:
    """The database's side of the signals (failed jobs, replication lag), as service_role."""
    failed = 0
    if await repository.table_exists(conn, PROCRASTINATE_JOBS):
        failed = await repository.failed_jobs(conn)
    return AlertSignals(
        error_rate=error_rate,
        pool_saturation=saturation,
        failed_jobs=failed,
        replication_lag_seconds=await repository.replication_lag_seconds(conn),
    )


async def run_alert_rules(
    worker_db: Database, api_db: Database, registry: CollectorRegistry, pool_max_size: int
) -> list[str]:
    """The periodic alert check of an API process (its own request and pool figures), written
    through the worker's login role."""
    async with worker_db.transaction(SERVICE) as conn:
        signals = await collect_signals(
            conn,
            error_rate=error_rate(registry),
            saturation=pool_saturation(api_db.stats(), pool_max_size),
        )
        return await notify_alerts(conn, signals)


@asynccontextmanager
async def periodic_alert_rules(
    worker_db: Database,
    api_db: Database,
    registry: CollectorRegistry,
    pool_max_size: int,
    every_seconds: float,
) -> AsyncIterator[None]:
    """Run the alert rules every `every_seconds` in the background while the block runs. They
    read this process's own request counters and pool, so they run in the API process rather
    than as a job; a failed check is logged and the next one still runs."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await run_alert_rules(worker_db, api_db, registry, pool_max_size)
            except Exception:
                log.exception("alert rules failed")

    async with running(loop()):
        yield


async def notify_alerts(
    conn: Connection, signals: AlertSignals, limits: AlertThresholds | None = None
) -> list[str]:
    """Turn firing rules into in-app notifications for every platform admin, at most one per
    rule and admin an hour; returns the rules that fired. Run as service_role."""
    alerts = firing(signals, limits or AlertThresholds())
    for key, message in alerts:
        await repository.notify_platform_admins(
            conn, key, f"SlotEase alert: {key.replace('_', ' ')}", message
        )
    return [key for key, _ in alerts]
