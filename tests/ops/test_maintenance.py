"""Scheduled maintenance: partitions twelve months ahead, retention that drops exactly the old
months, anonymization, statistics; and the monitoring around it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slotease.config import Settings
from slotease.db.database import SERVICE, Database
from slotease.kit import crypto
from slotease.ops import maintenance, monitoring
from tests.analytics.arrange import service_database
from tests.factories import Owner, make_organization, make_service, make_user, seal, unseal
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC)


def partition(table: str, months: int) -> str:
    return f"{table}_p{maintenance.months_before(NOW, -months):%Y%m}"


def partitions(owner: Owner, table: str) -> set[str]:
    rows = owner.execute(
        "select inhrelid::regclass::text from pg_inherits where inhparent = %s::regclass",
        (f"public.{table}",),
    ).fetchall()
    return {name for (name,) in rows}


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    async for database in service_database(settings):
        yield database


async def test_partitions_are_made_twelve_months_ahead_for_every_table(
    owner: Owner, db: Database
) -> None:
    created = await maintenance.ensure_partitions(db)
    tables = ("appointments", "notifications", "analytics_events", "audit_log")
    assert {f"public.{t}" for t in tables} <= set(created)
    for table in tables:
        assert {partition(table, m) for m in range(13)} <= partitions(owner, table)
        assert partition(table, 13) not in partitions(owner, table)
    assert set((await maintenance.ensure_partitions(db)).values()) == {0}


async def test_retention_drops_exactly_the_months_before_the_cutoff(
    owner: Owner, db: Database, settings: Settings
) -> None:
    owner.execute("select app.ensure_monthly_partitions('public.audit_log', 30, 0)")
    old = [partition("audit_log", -m) for m in range(25, 31)]
    assert set(old) <= partitions(owner, "audit_log")
    dropped = await maintenance.apply_retention(db, settings.model_copy(), NOW)
    assert sorted(dropped["public.audit_log"]) == sorted(old)
    assert dropped["public.notifications"] == dropped["public.analytics_events"] == []
    remaining = partitions(owner, "audit_log")
    assert not set(old) & remaining
    assert {partition("audit_log", -m) for m in range(25)} <= remaining
    assert "audit_log_default" in remaining


async def test_old_events_and_appointments_lose_their_personal_data(
    owner: Owner, db: Database, settings: Settings
) -> None:
    user = make_user(owner)
    org = make_organization(owner)
    service = make_service(owner, org, capacity=10)
    old, recent = NOW - timedelta(days=450), NOW - timedelta(days=30)
    for at in (old, recent):
        owner.execute(
            "insert into public.analytics_events (organization_id, user_id, event_type,"
            " occurred_at) values (%s, %s, 'page.view', %s)",
            (org, user.id, at),
        )
        appointment = uuid.uuid4()
        owner.execute(
            "insert into public.appointments"
            " (id, organization_id, service_id, customer_id, starts_at, ends_at, notes)"
            " values (%s, %s, %s, %s, %s, %s, %s)",
            (
                appointment,
                org,
                service,
                user.id,
                at,
                at + timedelta(minutes=30),
                seal(crypto.NOTES, appointment, "allergic to penicillin"),
            ),
        )
    anonymized = await maintenance.anonymize(db, settings, NOW)
    assert anonymized == {"public.analytics_events": 1, "public.appointments": 1}
    events = owner.execute(
        "select occurred_at < %s, user_id from public.analytics_events"
        " where organization_id = %s and event_type = 'page.view' order by 1",
        (recent - timedelta(days=1), org),
    ).fetchall()
    assert events == [(False, user.id), (True, None)]
    notes = owner.execute(
        "select starts_at < %s, id, notes from public.appointments where organization_id = %s"
        " order by 1",
        (recent - timedelta(days=1), org),
    ).fetchall()
    assert [(old, blob and unseal(crypto.NOTES, id_, blob)) for old, id_, blob in notes] == [
        (False, "allergic to penicillin"),
        (True, None),
    ]


async def test_hot_tables_are_analyzed(owner: Owner, db: Database) -> None:
    owner.execute("select pg_stat_reset()")
    assert await maintenance.analyze_hot_tables(db) == maintenance.HOT_TABLES
    row = owner.execute(
        "select last_analyze is not null from pg_stat_user_tables where relname = 'tickets'"
    ).fetchone()
    assert row == (True,)


def test_views_are_refreshed_only_within_the_configured_hours() -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)
    due = [h for h in range(24) if maintenance.refresh_due(at.replace(hour=h), (6, 22))]
    assert due == list(range(6, 23))


def test_refresh_hours_are_validated() -> None:
    with pytest.raises(ValueError, match="first <= last"):
        Settings(analytics_refresh_hours=(22, 6))


async def test_metrics_show_queue_lengths_without_naming_tenants(
    owner: Owner, client: httpx.AsyncClient
) -> None:
    org = make_organization(owner)
    queue = owner.execute(
        "insert into public.queues (organization_id, name, prefix) values (%s, 'Desk', 'M')"
        " returning id",
        (org,),
    ).fetchone()
    assert queue is not None
    for number in range(1, 101):
        owner.execute(
            "insert into public.tickets (organization_id, queue_id, service_date, number)"
            " values (%s, %s, current_date, %s)",
            (org, queue[0], number),
        )
    response = await client.get("/metrics")
    # A scrape is read by operators of every tenant: no organization's or queue's id in it.
    assert str(queue[0]) not in response.text
    assert str(org) not in response.text
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith("slotease_queue")
    }
    assert samples["slotease_queue_waiting_tickets_max"] >= 100
    assert samples["slotease_queue_waiting_tickets_total"] >= 100
    assert "slotease_jobs" in response.text


async def test_alerts_notify_platform_admins_once_an_hour(owner: Owner, db: Database) -> None:
    admin = make_user(owner, super_admin=True)
    signals = monitoring.AlertSignals(
        error_rate=0.2, pool_saturation=0.95, failed_jobs=0, replication_lag_seconds=None
    )
    for _ in range(2):
        async with db.transaction(SERVICE) as conn:
            fired = await monitoring.notify_alerts(conn, signals)
        assert fired == ["error_rate", "pool_saturation"]
    rows = owner.execute(
        "select data ->> 'alert', channel from public.notifications where user_id = %s order by 1",
        (admin.id,),
    ).fetchall()
    assert rows == [("error_rate", "in_app"), ("pool_saturation", "in_app")]
    calm = monitoring.AlertSignals(0.0, 0.1, 0, 1.0)
    assert monitoring.firing(calm, monitoring.AlertThresholds()) == []
    assert monitoring.pool_saturation({"pool_size": 10, "pool_available": 1}, 10) == 0.9


def _alert_loops() -> list[asyncio.Task[Any]]:
    """This process's running tasks that check the alert rules."""
    prefix = f"{monitoring.periodic_alert_rules.__qualname__}."
    return [t for t in asyncio.all_tasks() if t.get_coro().__qualname__.startswith(prefix)]


async def _alerts_of(owner: Owner, user_id: object, seconds: float) -> set[str]:
    """The alerts the user has been notified of, waiting up to `seconds` for the first one."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        rows = owner.execute(
            "select data ->> 'alert' from public.notifications"
            " where user_id = %s and template = 'ops.alert'",
            (user_id,),
        ).fetchall()
        if rows or asyncio.get_running_loop().time() > deadline:
            return {alert for (alert,) in rows}
        await asyncio.sleep(0.05)


async def test_a_serving_process_that_runs_jobs_checks_the_alert_rules(
    owner: Owner, settings: Settings
) -> None:
    admin = make_user(owner, super_admin=True)
    async with served(build_app(settings, alert_interval_seconds=0.05)):
        assert _alert_loops() == []

    app = build_app(settings, run_worker=True, alert_interval_seconds=0.05)
    async with served(app):
        assert len(_alert_loops()) == 1
        app.state.context.metrics.observe("GET", "/v1/x", 500, 0.01)
        assert "error_rate" in await _alerts_of(owner, admin.id, 10)
