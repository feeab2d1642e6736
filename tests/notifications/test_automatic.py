"""Automatic messages from appointment events, end to end: the request enqueues in its own
transaction, the worker writes and delivers, the email goes over real SMTP."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from slotease.config import Settings
from slotease.kit.events import DomainEvent, EventBus
from tests.appointments.arrange import make_clinic, soon
from tests.factories import Owner, User, make_user
from tests.notifications.support import Mailbox, body_of, jobs, run_jobs, with_smtp, worker_app

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1])


async def _book(
    client: httpx.AsyncClient, owner: Owner, days: int = 5
) -> tuple[dict[str, Any], User]:
    clinic = make_clinic(owner)
    customer = make_user(owner, name="Ada Lovelace")
    starts_at = clinic.at(soon(clinic, days), "10:00")
    response = await client.post(
        "/v1/appointments",
        json={"service_id": str(clinic.service_id), "starts_at": starts_at.isoformat()},
        headers=customer.headers,
    )
    assert response.status_code == 201, response.text
    return response.json(), customer


@pytest.mark.usefixtures("clean_jobs")
async def test_a_booking_sends_one_confirmation_with_its_calendar_file(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    appointment, customer = await _book(client, owner)
    assert [j[1] for j in jobs(owner, "notifications.notify_event")] == [
        "notifications.notify_event"
    ]

    async with worker_app(settings) as (app, _):
        await run_jobs(app)
        await run_jobs(app)  # nothing left: a second run sends nothing more

    assert len(mailbox.messages) == 1
    recipients, message = mailbox.messages[0]
    assert recipients == [customer.email]
    assert message["Subject"].startswith("Booking confirmed: Consultation on ")
    text = body_of(message)
    assert "Hello Ada Lovelace" in text
    assert "is booked for" in text
    assert "<p>Hello Ada Lovelace" in body_of(message, "html")
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "appointment.ics"
    ics = attachment.get_payload(decode=True)
    assert isinstance(ics, bytes)
    event = Calendar.from_ical(ics).walk("VEVENT")[0]
    assert str(event["UID"]) == f"{appointment['id']}@slotease.dev"
    assert event.decoded("DTSTART") == datetime.fromisoformat(appointment["starts_at"])
    # The attachment is the very document the customer downloads.
    download = await client.get(
        f"/v1/appointments/{appointment['id']}.ics", headers=customer.headers
    )
    assert download.content == ics

    rows = owner.execute(
        "select channel, status, provider, provider_message_id is not null, attempts, last_error"
        " from public.notifications where user_id = %s order by created_at, channel",
        (customer.id,),
    ).fetchall()
    by_channel = {row[0]: row[1:] for row in rows}
    assert by_channel["in_app"][:1] == ("delivered",)
    # No push or SMS provider is configured: recorded as skipped, then email takes over.
    assert by_channel["push"][0] == "skipped"
    assert "no push provider" in by_channel["push"][4]
    assert by_channel["sms"][0] == "skipped"
    assert "no sms provider" in by_channel["sms"][4]
    assert by_channel["email"] == ("sent", "smtp", True, 1, None)
    assert [j[2] for j in jobs(owner, "notifications.notify_event")] == ["succeeded"]


@pytest.mark.usefixtures("clean_jobs")
async def test_a_rolled_back_request_enqueues_nothing(
    client: httpx.AsyncClient, owner: Owner, mailbox: Mailbox, bus: EventBus
) -> None:
    async def fail_after_the_others(_: object, event: DomainEvent) -> None:
        raise RuntimeError(f"refusing {event.name}")

    clinic = make_clinic(owner)
    customer = make_user(owner)
    unsubscribe = bus.subscribe_transactional(fail_after_the_others)
    try:
        response = await client.post(
            "/v1/appointments",
            json={
                "service_id": str(clinic.service_id),
                "starts_at": clinic.at(soon(clinic), "11:00").isoformat(),
            },
            headers=customer.headers,
        )
    finally:
        unsubscribe()
    assert response.status_code == 500
    assert jobs(owner) == []
    assert owner.execute(
        "select count(*) from public.appointments where customer_id = %s", (customer.id,)
    ).fetchone() == (0,)


@pytest.mark.usefixtures("clean_jobs")
async def test_reminders_are_scheduled_moved_and_removed(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    appointment, customer = await _book(client, owner)
    starts_at = datetime.fromisoformat(appointment["starts_at"])

    def reminders() -> list[tuple[datetime, str]]:
        return [(j[4], j[5]) for j in jobs(owner, "notifications.remind") if j[2] == "todo"]

    lock = f"reminder:{appointment['id']}"
    assert reminders() == [
        (starts_at - timedelta(hours=24), f"{lock}:24h"),
        (starts_at - timedelta(hours=1), f"{lock}:1h"),
    ]

    moved = starts_at + timedelta(days=1, hours=2)
    response = await client.put(
        f"/v1/appointments/{appointment['id']}",
        json={"starts_at": moved.isoformat()},
        headers=customer.headers,
    )
    assert response.status_code == 200, response.text
    assert reminders() == [
        (moved - timedelta(hours=24), f"{lock}:24h"),
        (moved - timedelta(hours=1), f"{lock}:1h"),
    ]

    response = await client.delete(
        f"/v1/appointments/{appointment['id']}", headers=customer.headers
    )
    assert response.status_code == 200
    assert reminders() == []


@pytest.mark.usefixtures("clean_jobs")
async def test_a_reminder_is_sent_only_for_the_start_it_was_set_for(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    appointment, customer = await _book(client, owner)
    owner.execute(
        "update public.procrastinate_jobs set scheduled_at = now() - interval '1 second'"
        " where task_name = 'notifications.remind'"
    )
    # A reminder job left over from an earlier start must send nothing.
    owner.execute(
        "select app.enqueue_job('notifications', 'notifications.remind', %s::jsonb)",
        (
            json.dumps(
                {
                    "appointment_id": appointment["id"],
                    "starts_at": "2001-01-01T10:00:00+00:00",
                    "offset": "1h",
                }
            ),
        ),
    )
    owner.execute("delete from public.procrastinate_jobs where task_name <> 'notifications.remind'")
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    subjects = [str(m["Subject"]).strip() for _, m in mailbox.messages]
    # The 24 h and the 1 h reminders, and not the one set for an earlier start.
    assert len(subjects) == 2
    assert all(s.startswith("Reminder: Consultation on ") for s in subjects)
    assert all(r == [customer.email] for r, _ in mailbox.messages)
