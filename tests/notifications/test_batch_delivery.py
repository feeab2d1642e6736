"""A delivery job sends all its emails over one SMTP connection and records their outcomes
together; what one recipient's refusal or delay does stays with that recipient."""

from __future__ import annotations

import json

import pytest

from slotease.config import Settings
from tests.factories import Owner, User, make_organization, make_user
from tests.notifications.support import (
    Mailbox,
    body_of,
    jobs,
    queue_deliveries,
    run_jobs,
    with_smtp,
    worker_app,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1])


def _outcomes(owner: Owner, ids: list[object]) -> list[tuple[object, ...]]:
    """(status, attempts, provider, has a message id, last_error) of each notification."""
    return [
        owner.execute(
            "select status, attempts, provider, provider_message_id is not null, last_error"
            " from public.notifications where id = %s",
            (i,),
        ).fetchone()
        or ()
        for i in ids
    ]


def _customers(owner: Owner, count: int) -> list[User]:
    return [make_user(owner) for _ in range(count)]


async def test_a_job_sends_each_email_once_over_one_connection(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    customers = _customers(owner, 5)
    org = make_organization(owner, make_user(owner))
    ids = queue_deliveries(owner, org, [c.id for c in customers])

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    assert sorted(r for r, _ in mailbox.messages) == sorted([c.email] for c in customers)
    assert len(set(mailbox.peers)) == 1
    # One content for all, each addressed to its own recipient under an id of its own.
    assert all([m["To"]] == r for r, m in mailbox.messages)
    assert len({m["Message-ID"] for _, m in mailbox.messages}) == 5
    assert {body_of(m).strip() for _, m in mailbox.messages} == {"Hello"}
    assert _outcomes(owner, ids) == [("sent", 1, "smtp", True, None)] * 5
    assert [j[2] for j in jobs(owner, "notifications.deliver")] == ["succeeded"]

    # The job running again (a retry, a worker that died) finds nothing left to send.
    owner.execute(
        "select app.enqueue_job('interactive', 'notifications.deliver', %s::jsonb)",
        (json.dumps({"ids": [str(i) for i in ids]}),),
    )
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    assert len(mailbox.messages) == 5


async def _one_answered(
    owner: Owner, settings: Settings, mailbox: Mailbox, reply: str
) -> tuple[User, list[object]]:
    """A job of three emails whose middle recipient the server answers with `reply`: the
    others go out over the one connection. Returns that recipient and the three ids."""
    first, answered, last = _customers(owner, 3)
    org = make_organization(owner, make_user(owner))
    mailbox.refuse[answered.email] = reply
    ids = queue_deliveries(owner, org, [first.id, answered.id, last.id])

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    assert [r for r, _ in mailbox.messages] == [[first.email], [last.email]]
    assert len(set(mailbox.peers)) == 1  # the answer did not cost the connection
    sent, _, sent_too = _outcomes(owner, ids)
    assert sent == sent_too == ("sent", 1, "smtp", True, None)
    return answered, ids


async def test_a_refused_recipient_fails_alone_and_the_others_go_out(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    _, ids = await _one_answered(owner, settings, mailbox, "550 No such mailbox")

    failed = _outcomes(owner, ids)[1]
    assert failed[:4] == ("failed", 1, "smtp", False)
    assert "550" in str(failed[4])
    # A permanent refusal is final: nothing is left for a retry.
    assert [j[2] for j in jobs(owner, "notifications.deliver")] == ["succeeded"]


async def test_a_delayed_recipient_stays_queued_alone_for_the_retry(
    owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    delayed, ids = await _one_answered(owner, settings, mailbox, "451 Try again later")

    queued = _outcomes(owner, ids)[1]
    assert queued[:4] == ("queued", 1, "smtp", False)
    assert "451" in str(queued[4])
    [job] = jobs(owner, "notifications.deliver")
    assert job[2] == "todo"  # retried later, for the one message still queued

    # The retry sends the delayed message only, once the server takes it.
    mailbox.refuse.clear()
    owner.execute(
        "update public.procrastinate_jobs set scheduled_at = now() where id = %s", (job[0],)
    )
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    assert [r for r, _ in mailbox.messages][2:] == [[delayed.email]]
    assert _outcomes(owner, ids)[1] == ("sent", 2, "smtp", True, None)
