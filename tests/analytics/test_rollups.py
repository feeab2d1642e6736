"""Daily rollups: analytics answers include a change as soon as it is committed, and the
trigger-kept figures always equal a recount of the base tables."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from slotease.config import Settings
from tests.analytics.arrange import generated_report
from tests.appointments.arrange import Clinic, insert_as_owner, make_clinic
from tests.factories import Owner, make_user
from tests.queues.arrange import act, add_queue, join

pytestmark = pytest.mark.anyio

SERVICE_COLUMNS = "total, completed, cancelled, no_show, booked_minutes, ratings, rating_sum"
QUEUE_COLUMNS = (
    "tickets, served, no_show, cancelled, waits, wait_minutes_sum, services,"
    " service_minutes_sum, estimates, estimate_error_sum"
)
# The rollups' figures computed from scratch, for comparison.
SERVICE_RECOUNT = (
    "select service_id, day, sum(total)::integer, sum(completed)::integer,"
    " sum(cancelled)::integer, sum(no_show)::integer, sum(booked_minutes)::numeric,"
    " sum(ratings)::integer, sum(rating_sum)::integer from ("
    " select a.service_id, (a.starts_at at time zone o.timezone)::date as day, 1 as total,"
    " (a.status = 'completed')::integer as completed,"
    " (a.status = 'cancelled')::integer as cancelled, (a.status = 'no_show')::integer as no_show,"
    " case when a.status <> 'cancelled' then extract(epoch from a.ends_at - a.starts_at) / 60"
    "   else 0 end as booked_minutes, 0 as ratings, 0 as rating_sum"
    " from public.appointments a join public.organizations o on o.id = a.organization_id"
    " where a.organization_id = %(org)s"
    " union all"
    " select f.service_id, (f.appointment_starts_at at time zone o.timezone)::date, 0, 0, 0, 0,"
    " 0, 1, f.rating"
    " from public.feedback f join public.organizations o on o.id = f.organization_id"
    " where f.organization_id = %(org)s) c group by service_id, day"
)
SERVICE_ROLLUP = (
    f"select service_id, day, {SERVICE_COLUMNS} from public.analytics_daily_service"
    " where organization_id = %(org)s"
)


async def _complete(client: httpx.AsyncClient, clinic: Clinic, appointment_id: str) -> None:
    for status in ("checked_in", "in_service", "completed"):
        response = await client.put(
            f"/v1/appointments/{appointment_id}",
            json={"status": status},
            headers=clinic.staff.headers,
        )
        assert response.status_code == 200, response.text


def _appointments_today(owner: Owner, clinic: Clinic, count: int) -> list[str]:
    """Appointments early today (local time), written as psql would: the API books no past."""
    today = datetime.now(clinic.zone).date()
    customer = make_user(owner)
    for i in range(count):
        insert_as_owner(owner, clinic, customer, clinic.at(today, "00:00") + timedelta(hours=i))
    return [
        str(row[0])
        for row in owner.execute(
            "select id from public.appointments where service_id = %s order by starts_at",
            (clinic.service_id,),
        ).fetchall()
    ]


async def _csv_report(
    client: httpx.AsyncClient, settings: Settings, clinic: Clinic, kind: str, day: date
) -> list[list[str]]:
    body = {
        "organization_id": str(clinic.org_id),
        "kind": kind,
        "from": day.isoformat(),
        "to": day.isoformat(),
        "format": "csv",
    }
    report = await generated_report(client, settings, clinic.admin.headers, body)
    assert report["status"] == "ready"
    download = await client.get(report["download_url"], headers=clinic.admin.headers)
    assert download.status_code == 200
    return list(csv.reader(io.StringIO(download.text)))


async def test_a_completed_appointment_and_a_served_ticket_count_at_once(
    client: httpx.AsyncClient, owner: Owner, settings: Settings
) -> None:
    clinic = make_clinic(owner, capacity=5)
    queue_id = await add_queue(client, clinic.org_id, clinic.admin)
    today = datetime.now(clinic.zone).date()
    first, second = _appointments_today(owner, clinic, 2)
    await _complete(client, clinic, first)
    response = await client.delete(f"/v1/appointments/{second}", headers=clinic.admin.headers)
    assert response.status_code == 200, response.text
    ticket = await join(client, queue_id, make_user(owner))
    for action in ("call", "start", "complete"):
        assert (await act(client, clinic.staff, ticket["id"], action)).status_code == 200

    base = f"/v1/analytics/organization/{clinic.org_id}"
    span = {"from": today.isoformat(), "to": today.isoformat()}
    performance = await client.get(f"{base}/performance", params=span, headers=clinic.admin.headers)
    assert performance.status_code == 200, performance.text
    assert [
        (s["service_id"], s["appointments"], s["completed"], s["cancelled"], s["booked_minutes"])
        for s in performance.json()["services"]
    ] == [(str(clinic.service_id), 2, 1, 1, 30.0)]

    expected = {"appointments": 2.0, "completed": 1.0, "cancellations": 1.0, "tickets_served": 1.0}
    for metric, value in expected.items():
        trends = await client.get(
            f"{base}/trends", params={**span, "metric": metric}, headers=clinic.admin.headers
        )
        assert trends.status_code == 200, trends.text
        assert trends.json()["series"] == [{"date": today.isoformat(), "value": value}]

    dashboard = (await client.get(f"{base}/dashboard", headers=clinic.staff.headers)).json()
    assert (dashboard["appointments_total"], dashboard["completed"], dashboard["cancelled"]) == (
        2,
        1,
        1,
    )

    appointments = await _csv_report(client, settings, clinic, "appointments", today)
    assert appointments[0] == [
        "day", "service", "total", "completed", "cancelled", "no_show", "booked_minutes",
        "rating_avg",
    ]  # fmt: skip
    assert appointments[1:] == [[today.isoformat(), "Consultation", "2", "1", "1", "0", "30.0", ""]]
    queues = await _csv_report(client, settings, clinic, "queues", today)
    assert queues[0][:4] == ["day", "queue", "tickets", "served"]
    assert [row[:4] for row in queues[1:]] == [[today.isoformat(), "Desk A", "1", "1"]]


@pytest.mark.parametrize("kind", ["appointments", "queues", "feedback"])
async def test_a_csv_report_of_an_empty_range_has_its_header(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, kind: str
) -> None:
    clinic = make_clinic(owner)
    rows = await _csv_report(client, settings, clinic, kind, date(2020, 1, 6))
    assert len(rows) == 1
    assert rows[0][:2] == ["day", "queue" if kind == "queues" else "service"]


async def test_parallel_status_changes_leave_exact_counts(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=40)
    appointments = _appointments_today(owner, clinic, 20)
    completed, cancelled = appointments[:12], appointments[12:]

    async def cancel(appointment_id: str) -> None:
        response = await client.delete(
            f"/v1/appointments/{appointment_id}", headers=clinic.admin.headers
        )
        assert response.status_code == 200, response.text

    await asyncio.gather(
        *(_complete(client, clinic, a) for a in completed), *(cancel(a) for a in cancelled)
    )
    row = owner.execute(
        "select total, completed, cancelled, booked_minutes from public.analytics_daily_service"
        " where service_id = %s",
        (clinic.service_id,),
    ).fetchone()
    assert row == (20, 12, 8, 12 * 30)


# A mixed sequence of changes, as psql or any writer could make them.
Step = tuple[str, int, int]
steps = st.lists(
    st.tuples(
        st.sampled_from(
            ["book", "advance", "cancel", "no_show", "move", "rate", "unrate", "delete"]
        ),
        st.integers(0, 5),
        st.integers(-40, 40),
    ),
    max_size=25,
)
REFUSED = {"SESTA", "23502", "23503"}
NEXT_STATUS = {"booked": "checked_in", "checked_in": "in_service", "in_service": "completed"}


def _apply(owner: Owner, clinic: Clinic, customer: uuid.UUID, step: Step) -> None:
    action, pick, shift = step
    rows = owner.execute(
        "select a.id, a.status, f.id from public.appointments a"
        " left join public.feedback f on f.appointment_id = a.id"
        " where a.service_id = %s order by a.created_at, a.id",
        (clinic.service_id,),
    ).fetchall()
    if action == "book" or not rows:
        # Around midnight, hours apart, so that days and DST edges are crossed.
        starts = clinic.at(date(2026, 3, 29), "00:00") + timedelta(hours=shift)
        owner.execute(
            "insert into public.appointments"
            " (organization_id, service_id, customer_id, starts_at, ends_at)"
            " values (%s, %s, %s, %s, %s)",
            (clinic.org_id, clinic.service_id, customer, starts, starts + timedelta(minutes=45)),
        )
        return
    appointment, status, feedback = rows[pick % len(rows)]
    statement, params = {
        "advance": ("update public.appointments set status = %s where id = %s",
                    (NEXT_STATUS.get(status), appointment)),
        "cancel": ("update public.appointments set status = 'cancelled' where id = %s",
                   (appointment,)),
        "no_show": ("update public.appointments set status = 'no_show' where id = %s",
                    (appointment,)),
        "move": ("update public.appointments set starts_at = starts_at + %s,"
                 " ends_at = ends_at + %s where id = %s",
                 (timedelta(days=shift), timedelta(days=shift), appointment)),
        "rate": ("insert into public.feedback (organization_id, appointment_id,"
                 " appointment_starts_at, service_id, customer_id, rating)"
                 " select organization_id, id, starts_at, service_id, customer_id, %s"
                 " from public.appointments where id = %s on conflict do nothing",
                 (pick % 5 + 1, appointment)),
        "unrate": ("delete from public.feedback where id = %s", (feedback,)),
        "delete": ("delete from public.appointments where id = %s", (appointment,)),
    }[action]  # fmt: skip
    try:
        with owner.transaction():
            owner.execute(statement, params)
    except psycopg.Error as exc:
        # A change the rules refuse (a bad transition, a final status with no next one, a
        # rated appointment moved) leaves everything as it was.
        if exc.sqlstate not in REFUSED:
            raise


async def test_the_rollup_equals_a_recount_after_any_changes(owner: Owner) -> None:
    clinic = make_clinic(owner, capacity=100)
    customer = make_user(owner).id

    @hypothesis_settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(steps)
    def check(sequence: list[Step]) -> None:
        owner.execute("delete from public.appointments where service_id = %s", (clinic.service_id,))
        for step in sequence:
            _apply(owner, clinic, customer, step)
        org = {"org": clinic.org_id}
        assert sorted(owner.execute(SERVICE_ROLLUP, org).fetchall()) == sorted(
            owner.execute(SERVICE_RECOUNT, org).fetchall()
        )

    check()


async def test_a_timezone_change_recounts_the_days(owner: Owner) -> None:
    clinic = make_clinic(owner, tz="Europe/Paris")
    insert_as_owner(owner, clinic, make_user(owner), clinic.at(date(2026, 6, 1), "00:30"))
    org = {"org": clinic.org_id}
    assert [row[1] for row in owner.execute(SERVICE_ROLLUP, org).fetchall()] == [date(2026, 6, 1)]
    owner.execute(
        "update public.organizations set timezone = 'UTC' where id = %s", (clinic.org_id,)
    )
    assert [row[1] for row in owner.execute(SERVICE_ROLLUP, org).fetchall()] == [date(2026, 5, 31)]


def _queue_figures(owner: Owner, queue_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return owner.execute(
        f"select day, {QUEUE_COLUMNS} from public.analytics_daily_queue where queue_id = %s",
        (queue_id,),
    ).fetchall()


async def test_ticket_figures_follow_every_change(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    queue_id = await add_queue(client, clinic.org_id, clinic.admin)
    today = datetime.now(clinic.zone).date()
    served = await join(client, queue_id, make_user(owner))
    missed = await join(client, queue_id, make_user(owner))
    for action in ("call", "start", "complete"):
        assert (await act(client, clinic.staff, served["id"], action)).status_code == 200
    assert (await act(client, clinic.staff, missed["id"], "call")).status_code == 200
    assert (await act(client, clinic.staff, missed["id"], "no_show")).status_code == 200
    figures = _queue_figures(owner, queue_id)
    assert [row[:5] for row in figures] == [(today, 2, 1, 1, 0)]
    assert figures[0][5] == 2  # both waited
    owner.execute("select app.rebuild_daily_rollups(%s)", (clinic.org_id,))
    assert _queue_figures(owner, queue_id) == figures  # what a recount gives
    owner.execute("delete from public.tickets where id = %s", (missed["id"],))
    assert [row[:5] for row in _queue_figures(owner, queue_id)] == [(today, 1, 1, 0, 0)]
    owner.execute("delete from public.tickets where queue_id = %s", (queue_id,))
    assert _queue_figures(owner, queue_id) == []
