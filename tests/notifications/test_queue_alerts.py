"""Walk-in queue alerts, from the API to the recipient: the called ticket is told where to go,
and the ticket that reaches `queue_alert_position` is told once that its turn is near."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from slotease.config import Settings
from tests.factories import Owner, User, make_user
from tests.notifications.support import Mailbox, body_of, jobs, run_jobs, with_smtp, worker_app
from tests.queues.arrange import Desk, join, make_desk

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1])


async def _call_next(client: httpx.AsyncClient, desk: Desk, counter: str) -> dict[str, Any]:
    response = await client.post(
        f"/v1/queues/{desk.queue_id}/call-next",
        json={"counter": counter},
        headers=desk.staff.headers,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _messages(owner: Owner, user: User) -> list[tuple[str, str, str, str]]:
    rows = owner.execute(
        "select channel, status, subject, body from public.notifications"
        " where user_id = %s and channel in ('in_app', 'email') order by channel",
        (user.id,),
    ).fetchall()
    return [tuple(row) for row in rows]


async def test_the_called_ticket_is_sent_to_its_counter(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    desk = await make_desk(client, owner)
    customer = make_user(owner, name="Grace Hopper")
    ticket = await join(client, desk.queue_id, customer)
    called = await _call_next(client, desk, "Counter 2")
    assert called["id"] == ticket["id"]

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    number = ticket["number"]
    subject = f"It's your turn: {number}"
    body = f"Ticket {number}: please go to Counter 2."
    assert _messages(owner, customer) == [
        ("email", "sent", subject, body),
        ("in_app", "delivered", subject, body),
    ]
    [(recipients, message)] = mailbox.messages
    assert recipients == [customer.email]
    assert message["Subject"] == subject
    assert body in body_of(message)


async def test_only_the_ticket_reaching_the_alert_position_is_told_once(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    assert settings.queue_alert_position == 3
    desk = await make_desk(client, owner)
    customers = [make_user(owner, name=f"Customer {i}") for i in range(1, 6)]
    tickets = [await join(client, desk.queue_id, customer) for customer in customers]
    # Joining third is no move up the line: nobody is alerted yet.
    assert jobs(owner, "notifications.notify_event") == []

    # Fourth moves to 3rd; then it moves to 2nd (no alert) while fifth reaches 3rd.
    await _call_next(client, desk, "Counter 1")
    await _call_next(client, desk, "Counter 2")
    events = [j[3]["event"] for j in jobs(owner, "notifications.notify_event")]
    assert events.count("ticket.position") == 2
    assert events.count("ticket.called") == 2

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    for customer, ticket in zip(customers[3:], tickets[3:], strict=True):
        subject = "You are 3rd in line"
        body = f"Ticket {ticket['number']} at Test Clinic: you are 3rd in line. Please stay close."
        assert _messages(owner, customer) == [
            ("email", "sent", subject, body),
            ("in_app", "delivered", subject, body),
        ]
    # The second and third only moved to positions that send nothing.
    assert _messages(owner, customers[2]) == []
    assert _messages(owner, customers[1])[0][2].startswith("It's your turn")
    alerted = sorted(r[0] for r, m in mailbox.messages if m["Subject"] == "You are 3rd in line")
    assert alerted == sorted([customers[3].email, customers[4].email])
    assert len(mailbox.messages) == 4
