"""What a booking owes (its confirmation and reminder jobs, its webhook deliveries) is sent in
one statement per kind, together with the INSERT that takes the service's capacity lock, in
one round trip (issue 14); and it is owed exactly once per booking that commits."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import pq

from slotease.jobs.repository import ENQUEUE_JOBS_SQL
from slotease.notifications.automatic import NOTIFY_TASK, REMIND_TASK
from tests.appointments.arrange import book, count_active, make_clinic, soon
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio

OFFSETS = (timedelta(hours=24), timedelta(hours=1))  # SLOTEASE_REMINDER_OFFSETS' default


@pytest.fixture(autouse=True)
def clean_jobs(owner: Owner) -> None:
    owner.execute("delete from public.procrastinate_jobs")


def _jobs(owner: Owner, task: str) -> list[dict[str, Any]]:
    rows = owner.execute(
        "select args from public.procrastinate_jobs where task_name = %s order by id", (task,)
    ).fetchall()
    return [args for (args,) in rows]


def _booked_ids(owner: Owner, service_id: object) -> set[str]:
    rows = owner.execute(
        "select id::text from public.appointments where service_id = %s and status = 'booked'",
        (service_id,),
    ).fetchall()
    return {appointment_id for (appointment_id,) in rows}


async def test_racing_for_the_last_place_books_it_once_and_owes_the_winners_jobs_only(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=3)
    starts_at = clinic.at(soon(clinic), "12:00")
    for _ in range(2):
        assert (await book(client, make_user(owner), clinic, starts_at)).status_code == 201
    customers = [make_user(owner) for _ in range(30)]

    responses = await asyncio.gather(*(book(client, c, clinic, starts_at) for c in customers))

    assert sorted(r.status_code for r in responses) == [201] + [409] * 29
    assert count_active(owner, clinic.service_id) == 3
    booked = _booked_ids(owner, clinic.service_id)
    # One confirmation per booking that committed; the refused ones rolled theirs back.
    confirmations = Counter(args["subject_id"] for args in _jobs(owner, NOTIFY_TASK))
    assert confirmations == Counter(dict.fromkeys(booked, 1))
    ahead = sum(1 for offset in OFFSETS if starts_at - offset > datetime.now(UTC))
    reminders = Counter(args["appointment_id"] for args in _jobs(owner, REMIND_TASK))
    assert reminders == Counter(dict.fromkeys(booked, ahead))


async def test_a_bookings_jobs_go_in_one_statement_with_its_insert(
    client: httpx.AsyncClient, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    clinic = make_clinic(owner, capacity=2)
    customer = make_user(owner)
    sent: list[tuple[str, bool]] = []
    execute = psycopg.AsyncCursor.execute

    async def recording(cursor: psycopg.AsyncCursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        text = query if isinstance(query, str) else query.as_string(cursor.connection)
        pipelined = cursor.connection.pgconn.pipeline_status != pq.PipelineStatus.OFF
        sent.append((text, pipelined))
        return await execute(cursor, query, *args, **kw)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", recording)
    response = await book(
        client, customer, clinic, clinic.at(soon(clinic), "09:30"), notes="first visit"
    )
    monkeypatch.undo()

    assert response.status_code == 201
    statements = [text for text, _ in sent]
    assert statements.count(ENQUEUE_JOBS_SQL) == 1
    assert not [s for s in statements if "app.enqueue_job(" in s or "drop_reminders" in s]
    (insert,) = [
        i for i, s in enumerate(statements) if s.startswith("insert into public.appointments")
    ]
    # From the INSERT to the commit (sent by the transaction itself, not recorded here):
    # nothing but statements of the one pipeline, which the database gets in one round trip.
    tail = sent[insert:]
    assert all(pipelined for _, pipelined in tail)
    assert ENQUEUE_JOBS_SQL in [text for text, _ in tail]
    assert len(_jobs(owner, NOTIFY_TASK)) == 1


async def test_a_booking_refused_by_the_capacity_trigger_leaves_no_job_and_no_key(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner)
    starts_at = clinic.at(soon(clinic), "14:00")
    assert (await book(client, make_user(owner), clinic, starts_at)).status_code == 201
    owner.execute("delete from public.procrastinate_jobs")
    late = make_user(owner)

    refused = await client.post(
        "/v1/appointments",
        json={"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat()},
        headers={**late.headers, "Idempotency-Key": "late-1"},
    )

    assert refused.status_code == 409
    assert refused.json()["detail"] == "The slot is full."
    assert owner.execute("select count(*) from public.procrastinate_jobs").fetchone() == (0,)
    kept = owner.execute(
        "select count(*) from public.idempotency_keys where idempotency_key = 'late-1'"
    ).fetchone()
    assert kept == (0,)
