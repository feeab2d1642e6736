"""Crashes: an API process killed in the middle of bookings, a worker killed in the middle of
jobs, and the database going down under load and coming back."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.appointments.arrange import make_clinic, max_overlap, soon
from tests.clusters.pgcluster import Cluster
from tests.clusters.slotease import confirmed, environment, serving, working
from tests.factories import make_user
from tests.notifications.support import Mailbox

CAPACITY = 2


@pytest.fixture
def env(slotease_primary: Cluster, mail: tuple[Mailbox, int], tmp_path: Path) -> dict[str, str]:
    # A worker beats every half second, so its death is noticed after 1.5 s; a request waits
    # at most a second for a connection.
    return environment(
        slotease_primary,
        tmp_path,
        SLOTEASE_SMTP_HOST="127.0.0.1",
        SLOTEASE_SMTP_PORT=str(mail[1]),
        SLOTEASE_SMTP_STARTTLS="false",
        SLOTEASE_WORKER_HEARTBEAT="0.5",
        SLOTEASE_POOL_MIN_SIZE="2",
        SLOTEASE_POOL_MAX_SIZE="8",
        SLOTEASE_POOL_TIMEOUT="1",
    )


def confirmation_jobs(owner: psycopg.Connection[Any], appointment_ids: list[Any]) -> list[Any]:
    rows = owner.execute(
        "select (args->>'subject_id')::uuid from public.procrastinate_jobs"
        " where task_name = 'notifications.notify_event' and args->>'event' = 'appointment.created'"
        " and (args->>'subject_id')::uuid = any(%s)",
        (appointment_ids,),
    ).fetchall()
    return sorted(row[0] for row in rows)


def test_an_api_killed_during_bookings_leaves_only_whole_bookings(
    env: dict[str, str], owner: psycopg.Connection[Any], tmp_path: Path
) -> None:
    clinic = make_clinic(owner, capacity=CAPACITY)
    day = soon(clinic, days=2)
    # Three slots for sixty customers: most are refused, and the capacity is fought for.
    slots = [clinic.at(day, hh_mm) for hh_mm in ("09:00", "09:30", "10:00")]
    customers = [make_user(owner) for _ in range(60)]
    booked: list[str] = []
    answered = threading.Event()

    with serving(env, tmp_path) as (api, process):

        def attempt(n: int) -> None:
            try:
                response = httpx.post(
                    f"{api}/v1/appointments",
                    json={
                        "service_id": str(clinic.service_id),
                        "starts_at": slots[n % len(slots)].isoformat(),
                    },
                    headers=customers[n].headers,
                    timeout=10,
                )
            except httpx.TransportError:
                return  # cut off by the kill: no answer, no promise
            if response.status_code == 201:
                booked.append(response.json()["id"])
            if n >= 8:
                answered.set()

        with ThreadPoolExecutor(max_workers=12) as pool:
            for n in range(len(customers)):
                pool.submit(attempt, n)
            assert answered.wait(30), "no booking was answered"
            process.kill()

    assert booked, "the kill came before any booking succeeded"
    rows = owner.execute(
        "select id::text, customer_id, starts_at, ends_at, status from public.appointments"
        " where service_id = %s",
        (clinic.service_id,),
    ).fetchall()
    stored = {row[0]: row for row in rows}
    # Every answered 201 is in the database, whole: customer, times, status, its usage counted
    # and its confirmation enqueued in the same transaction.
    assert set(booked) <= set(stored)
    for _, customer_id, starts_at, ends_at, status in rows:
        assert customer_id is not None
        assert status == "booked"
        assert ends_at - starts_at == timedelta(minutes=30)
    assert max_overlap(owner, clinic.service_id) <= CAPACITY
    usage = owner.execute(
        "select coalesce(sum(places), 0) from public.appointment_slot_usage where service_id = %s",
        (clinic.service_id,),
    ).fetchone()
    assert usage == (len(rows),)
    assert confirmation_jobs(owner, list(stored)) == sorted(uuid.UUID(key) for key in stored)


def wait_until(condition: Any, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.1)


def test_a_worker_killed_during_jobs_loses_none_and_sends_none_twice(
    env: dict[str, str], owner: psycopg.Connection[Any], mail: tuple[Mailbox, int], tmp_path: Path
) -> None:
    mailbox = mail[0]
    clinic = make_clinic(owner)
    day = soon(clinic, days=4)
    customers = [make_user(owner) for _ in range(8)]
    addresses = {c.email for c in customers}
    with serving(env, tmp_path) as (api, _):
        for n, customer in enumerate(customers):
            starts_at = clinic.at(day, f"{9 + n // 2:02d}:{30 * (n % 2):02d}")
            response = httpx.post(
                f"{api}/v1/appointments",
                json={"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat()},
                headers=customer.headers,
                timeout=10,
            )
            assert response.status_code == 201, response.text

    def unfinished() -> int:
        # Reminders wait for their time; what was due runs at once.
        row = owner.execute(
            "select count(*) from public.procrastinate_jobs where status in ('todo', 'doing')"
            " and (scheduled_at is null or scheduled_at <= now())"
        ).fetchone()
        assert row is not None
        return int(row[0])

    # The first worker is killed while the mail server has yet to answer its first message.
    mailbox.held = 0
    mailbox.hold()
    try:
        with working(env, tmp_path, "killed") as killed:
            wait_until(lambda: mailbox.held > 0, "the worker sent a message", 60)
            killed.kill()
    finally:
        mailbox.release()
    stalled = owner.execute(
        "select count(*) from public.procrastinate_jobs where status = 'doing'"
    ).fetchone()
    assert stalled is not None
    assert stalled[0] > 0
    with working(env, tmp_path, "survivor"):
        # The survivor's periodic jobs.retry_stalled (every minute) runs the dead one's jobs.
        wait_until(
            lambda: len(confirmed(mailbox, addresses)) >= len(customers) and unfinished() == 0,
            "every confirmation went out",
            100,
        )
        time.sleep(1)  # time for a duplicate, were one coming
    assert sorted(confirmed(mailbox, addresses)) == sorted(addresses)
    emails = owner.execute(
        "select user_id, status from public.notifications"
        " where channel = 'email' and user_id = any(%s)",
        ([c.id for c in customers],),
    ).fetchall()
    assert sorted(emails) == sorted((c.id, "sent") for c in customers)


def test_the_api_answers_again_by_itself_when_the_database_restarts(
    env: dict[str, str],
    owner: psycopg.Connection[Any],
    slotease_primary: Cluster,
    tmp_path: Path,
) -> None:
    clinic = make_clinic(owner)
    path = f"/v1/organizations/{clinic.org_id}/services"
    outcomes: list[tuple[float, int]] = []
    stop = threading.Event()

    with serving(env, tmp_path) as (api, _):

        def load() -> None:
            with httpx.Client(base_url=api, timeout=10) as http:
                while not stop.is_set():
                    try:
                        status = http.get(path).status_code
                    except httpx.TransportError:
                        status = 0
                    outcomes.append((time.monotonic(), status))
                    time.sleep(0.02)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1)
            slotease_primary.kill()
            down_at = time.monotonic()
            try:
                readiness_while_down = httpx.get(f"{api}/ready", timeout=10).status_code
                time.sleep(3)
                up_at = time.monotonic()
            finally:
                slotease_primary.start()
            wait_until(
                lambda: any(at > up_at and status == 200 for at, status in outcomes),
                "the API answered again",
                30,
            )
            readiness_after = httpx.get(f"{api}/ready", timeout=10).status_code
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    recovered = min(at for at, status in outcomes if at > up_at and status == 200) - up_at
    print(f"first answer {recovered:.2f} s after the database was started again")
    assert readiness_while_down == 503
    assert readiness_after == 200
    assert recovered < 5
    # While the database was away every request was answered, as a 503 problem.
    during = {status for at, status in outcomes if down_at + 0.5 < at < up_at}
    assert during == {503}
