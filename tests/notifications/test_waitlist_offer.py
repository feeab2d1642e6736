"""A freed place offered to a waiter: the database writes the in-app message in the
transaction that makes the offer; the notification job adds the outside message only."""

from __future__ import annotations

import httpx
import pytest

from slotease.config import Settings
from tests.appointments.arrange import book, make_clinic, soon
from tests.factories import Owner, make_user
from tests.notifications.support import Mailbox, body_of, jobs, run_jobs, with_smtp, worker_app

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1])


async def test_an_offer_is_emailed_once_with_its_hold_and_not_shown_twice_in_app(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    clinic = make_clinic(owner)
    slot = clinic.at(soon(clinic), "10:00")
    taken = await book(client, make_user(owner), clinic, slot)
    assert taken.status_code == 201, taken.text
    waiter = make_user(owner, name="Ada Lovelace")
    joined = await client.post(
        "/v1/waitlist",
        json={"service_id": str(clinic.service_id), "starts_at": slot.isoformat()},
        headers=waiter.headers,
    )
    assert joined.status_code == 201, joined.text
    owner.execute("delete from public.procrastinate_jobs")

    cancel = await client.delete(
        f"/v1/appointments/{taken.json()['id']}", headers=clinic.staff.headers
    )
    assert cancel.status_code == 200
    offers = [
        j for j in jobs(owner, "notifications.notify_event") if j[3]["event"] == "waitlist.offered"
    ]
    assert len(offers) == 1
    # The job names the entry only; the worker reads who waits, and for what, itself.
    assert offers[0][3] == {"event": "waitlist.offered", "subject_id": joined.json()["id"]}

    async with worker_app(settings) as (app, _):
        await run_jobs(app)
        await run_jobs(app)

    rows = owner.execute(
        "select channel, status, template from public.notifications where user_id = %s"
        " order by created_at, channel",
        (waiter.id,),
    ).fetchall()
    # The in-app row is the database's own; the job sends one outside message (push and
    # SMS have no provider here, so email).
    assert [r for r in rows if r[0] == "in_app"] == [("in_app", "delivered", "waitlist.offer")]
    assert [r for r in rows if r[0] == "email"] == [("email", "sent", "waitlist_offered")]
    # The cancelled customer hears of the cancellation; the waiter of the offer only.
    [message] = [m for r, m in mailbox.messages if r == [waiter.email]]
    assert message["Subject"] == "A place is free: Consultation"
    text = body_of(message)
    assert "Hello Ada Lovelace" in text
    assert f"({clinic.zone.key})" in text
    assert "The offer holds until " in text
