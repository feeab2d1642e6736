"""What the worker does with a queued message: quiet hours hold back what is not urgent,
an organization's own template wins over ours, and the recipient's language is used when we
have it, English otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from slotease.config import Settings
from tests.factories import Owner, User, make_organization, make_user
from tests.notifications.support import (
    Mailbox,
    body_of,
    jobs,
    queue_delivery,
    run_jobs,
    with_smtp,
    worker_app,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]

CONTEXT = {"service": "Consultation", "starts_at": "Monday 07 December 2026, 10:00 (UTC)"}


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1])


def _status(owner: Owner, notification: object) -> str:
    row = owner.execute(
        "select status from public.notifications where id = %s", (notification,)
    ).fetchone()
    assert row is not None
    return str(row[0])


async def test_quiet_hours_hold_a_message_until_they_end_unless_urgent(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    customer = make_user(owner)
    org = make_organization(owner, make_user(owner))
    now = datetime.now(UTC)
    ends = (now + timedelta(hours=1)).replace(second=0, microsecond=0)
    quiet = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": ends.strftime("%H:%M"),
        "timezone": "UTC",
    }
    response = await client.put(
        "/v1/me/notification-preferences",
        json={"email": True, "sms": True, "push": True, "in_app": True, "quiet_hours": quiet},
        headers=customer.headers,
    )
    assert response.status_code == 200, response.text
    held = queue_delivery(owner, org, customer.id, data={"urgent": False})
    urgent = queue_delivery(owner, org, customer.id, data={"urgent": True})

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    assert _status(owner, held) == "queued"
    assert _status(owner, urgent) == "sent"
    assert len(mailbox.messages) == 1
    waiting = [j for j in jobs(owner, "notifications.deliver") if j[2] == "todo"]
    assert [(j[3], j[4]) for j in waiting] == [({"ids": [str(held)]}, ends)]


TEMPLATES = {
    "booking_confirmed": {
        "subject": "{{ organization }}: see you {{ starts_at }}",
        "text": "Dear {{ recipient_name }}, {{ service }} is yours.",
        "fr": {
            "subject": "{{ organization }} : à bientôt",
            "text": "Bonjour {{ recipient_name }}.",
        },
    }
}


async def _deliver(owner: Owner, settings: Settings, customer: User, template: str) -> None:
    org = make_organization(owner, make_user(owner), name="Cabinet Rivoli")
    owner.execute(
        "update public.organizations set settings = settings || %s::jsonb where id = %s",
        (json.dumps({"templates": TEMPLATES}), org),
    )
    queue_delivery(owner, org, customer.id, template=template, data={"context": CONTEXT})
    async with worker_app(settings) as (app, _):
        await run_jobs(app)


async def test_the_organizations_template_replaces_ours(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    customer = make_user(owner, name="Ada Lovelace")
    await _deliver(owner, settings, customer, "booking_confirmed")
    [(recipients, message)] = mailbox.messages
    assert recipients == [customer.email]
    assert message["Subject"] == f"Cabinet Rivoli: see you {CONTEXT['starts_at']}"
    assert body_of(message).strip() == ("Dear Ada Lovelace, Consultation is yours.")


def _french(owner: Owner, name: str) -> User:
    customer = make_user(owner, name=name)
    owner.execute(
        "update public.user_profiles set locale = 'fr' where user_id = %s", (customer.id,)
    )
    return customer


async def test_a_french_reader_gets_french_where_it_exists_and_english_otherwise(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    # Our French booking confirmation, without the organization's templates in the way.
    customer = _french(owner, "Marie Curie")
    org = make_organization(owner, make_user(owner))
    queue_delivery(owner, org, customer.id, template="booking_confirmed", data={"context": CONTEXT})
    # No French reminder: English.
    queue_delivery(
        owner, org, customer.id, template="appointment_reminder", data={"context": CONTEXT}
    )
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    subjects = sorted(str(m["Subject"]) for _, m in mailbox.messages)
    assert len(subjects) == 2
    assert subjects[0].startswith("Reminder: Consultation on ")
    assert subjects[1] == f"Rendez-vous confirmé : Consultation le {CONTEXT['starts_at']}"

    # The organization's French version wins for a French reader.
    mailbox.messages.clear()
    await _deliver(owner, settings, _french(owner, "Irène Joliot"), "booking_confirmed")
    [(_, message)] = mailbox.messages
    assert message["Subject"] == "Cabinet Rivoli : à bientôt"
    assert body_of(message).strip() == "Bonjour Irène Joliot."


async def test_the_senders_data_cannot_stand_in_for_what_the_system_knows(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    customer = make_user(owner, name="Ada Lovelace")
    org = make_organization(owner, make_user(owner), name="Cabinet Rivoli")
    override = {
        "booking_confirmed": {
            "subject": "{{ organization_name }} about {{ service }}",
            "text": "{{ recipient_name }}, from {{ organization }}.",
        }
    }
    owner.execute(
        "update public.organizations set settings = settings || %s::jsonb where id = %s",
        (json.dumps({"templates": override}), org),
    )
    evil = dict.fromkeys(("organization_name", "organization", "recipient_name"), "Evil")
    queue_delivery(
        owner, org, customer.id, template="booking_confirmed", data={"context": CONTEXT | evil}
    )
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    [(_, message)] = mailbox.messages
    assert message["Subject"] == "Cabinet Rivoli about Consultation"
    assert body_of(message).strip() == "Ada Lovelace, from Cabinet Rivoli."


async def test_a_template_over_its_limits_fails_its_message_and_the_worker_goes_on(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    customer = make_user(owner)
    org = make_organization(owner, make_user(owner))
    huge = {"booking_confirmed": {"subject": "Hi", "text": "{{ 'x' * 10000000 }}"}}
    owner.execute(
        "update public.organizations set settings = settings || %s::jsonb where id = %s",
        (json.dumps({"templates": huge}), org),
    )
    refused = queue_delivery(
        owner, org, customer.id, template="booking_confirmed", data={"context": CONTEXT}
    )
    plain = queue_delivery(owner, make_organization(owner, make_user(owner)), customer.id)
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    assert _status(owner, refused) == "failed"
    error = owner.execute(
        "select last_error from public.notifications where id = %s", (refused,)
    ).fetchone()
    assert error is not None
    assert str(error[0]).startswith("The template ")
    assert _status(owner, plain) == "sent"
    assert len(mailbox.messages) == 1
