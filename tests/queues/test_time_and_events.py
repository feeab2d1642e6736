from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from slotease.config import Settings
from slotease.kit.events import DomainEvent, EventBus
from tests.factories import Owner, make_user
from tests.notifications.support import run_periodic
from tests.queues.arrange import act, join, make_desk, ticket_row

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("tz", ["Pacific/Auckland", "America/Los_Angeles", "UTC"])
async def test_numbers_restart_each_local_day(
    client: httpx.AsyncClient, owner: Owner, tz: str
) -> None:
    desk = await make_desk(client, owner, tz=tz)
    today = datetime.now(ZoneInfo(tz)).date()
    yesterday = today - timedelta(days=1)
    owner.execute(
        "insert into public.queue_counters (organization_id, queue_id, service_date, last_number)"
        " values (%s, %s, %s, 41)",
        (desk.org_id, desk.queue_id, yesterday),
    )
    owner.execute(
        "insert into public.tickets (organization_id, queue_id, service_date, number)"
        " values (%s, %s, %s, 41)",
        (desk.org_id, desk.queue_id, yesterday),
    )

    first = await join(client, desk.queue_id, make_user(owner))
    second = await join(client, desk.queue_id, make_user(owner))

    assert (first["number"], second["number"]) == ("A-001", "A-002")
    assert first["service_date"] == second["service_date"] == str(today)


def test_auckland_and_los_angeles_are_on_different_days() -> None:
    # 2026-03-10 20:00 UTC is already the 11th in Auckland and still the 10th in Los Angeles.
    instant = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    assert instant.astimezone(ZoneInfo("Pacific/Auckland")).date().day == 11
    assert instant.astimezone(ZoneInfo("America/Los_Angeles")).date().day == 10


async def test_a_called_ticket_past_its_grace_period_goes_to_the_back(
    client: httpx.AsyncClient,
    owner: Owner,
    settings: Settings,
    bus: EventBus,
    events: list[DomainEvent],
) -> None:
    desk = await make_desk(client, owner, settings={"grace_minutes": 3})
    late, waiting = make_user(owner), make_user(owner)
    late_ticket = await join(client, desk.queue_id, late)
    waiting_ticket = await join(client, desk.queue_id, waiting)
    await act(client, desk.staff, late_ticket["id"], "call", counter="2")
    owner.execute(
        "update public.tickets set called_at = now() - interval '2 minutes' where id = %s",
        (late_ticket["id"],),
    )
    await run_periodic(settings, "queues.expire_called_tickets", bus)
    assert ticket_row(owner, late_ticket["id"])[0] == "called"

    owner.execute(
        "update public.tickets set called_at = now() - interval '4 minutes' where id = %s",
        (late_ticket["id"],),
    )
    # Reading the queue changes nothing, however late the ticket is.
    assert (await client.get(f"/v1/queues/{desk.queue_id}")).json()["now_serving"] != []
    assert ticket_row(owner, late_ticket["id"])[0] == "called"
    events.clear()
    await run_periodic(settings, "queues.expire_called_tickets", bus)
    state = (await client.get(f"/v1/queues/{desk.queue_id}")).json()

    assert state["waiting_count"] == 2
    assert state["now_serving"] == []
    mine = (await client.get(f"/v1/tickets/{late_ticket['id']}", headers=late.headers)).json()
    assert mine["status"] == "waiting"
    assert mine["position"] == 2
    assert mine["counter"] is None
    other = await client.get(f"/v1/tickets/{waiting_ticket['id']}", headers=waiting.headers)
    assert other.json()["position"] == 1
    assert [e.name for e in events] == ["ticket.no_show", "queue.updated"]
    assert events[0].payload["id"] == late_ticket["id"]
    audit = owner.execute(
        "select count(*) from public.audit_log where table_name = 'tickets' and row_id = %s"
        " and new_row ->> 'status' = 'no_show'",
        (late_ticket["id"],),
    ).fetchone()
    assert audit == (1,)


async def test_no_show_stays_out_when_the_queue_does_not_requeue(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    desk = await make_desk(client, owner, settings={"grace_minutes": 1, "requeue_no_show": False})
    ticket = await join(client, desk.queue_id, make_user(owner))
    await act(client, desk.staff, ticket["id"], "call", counter="1")
    owner.execute(
        "update public.tickets set called_at = now() - interval '90 seconds' where id = %s",
        (ticket["id"],),
    )

    nobody = await client.post(
        f"/v1/queues/{desk.queue_id}/call-next", json={"counter": "1"}, headers=desk.staff.headers
    )

    assert nobody.status_code == 204
    assert ticket_row(owner, ticket["id"])[0] == "no_show"


async def test_events_are_delivered_after_commit_and_never_on_rollback(
    client: httpx.AsyncClient, owner: Owner, events: list[DomainEvent]
) -> None:
    desk = await make_desk(client, owner)
    first_user, second_user = make_user(owner), make_user(owner)
    first = await join(client, desk.queue_id, first_user)
    await join(client, desk.queue_id, second_user)
    events.clear()

    called = await client.post(
        f"/v1/queues/{desk.queue_id}/call-next", json={"counter": "7"}, headers=desk.staff.headers
    )

    assert called.status_code == 200
    assert [e.name for e in events] == ["ticket.called", "queue.moved", "queue.updated"]
    ticket_event, moved_event, queue_event = (e.payload for e in events)
    assert ticket_event["id"] == first["id"]
    assert ticket_event["counter"] == "7"
    assert ticket_event["number"] == "A-001"
    assert ticket_event["status"] == "called"
    # The one waiting ticket moved up: positions 1 to 1 changed.
    assert moved_event == {
        "queue_id": str(desk.queue_id),
        "organization_id": str(desk.org_id),
        "waiting_count": 1,
        "first_moved": 1,
        "last_moved": 1,
    }
    assert queue_event["waiting_count"] == 1
    assert queue_event["now_serving"] == [{"number": "A-001", "counter": "7"}]

    events.clear()
    refused = await client.post(
        f"/v1/queues/{desk.queue_id}/tickets", json={}, headers=second_user.headers
    )
    invalid = await act(client, desk.staff, first["id"], "complete")
    assert refused.status_code == invalid.status_code == 409
    assert events == []


async def test_estimates_learn_from_served_tickets(client: httpx.AsyncClient, owner: Owner) -> None:
    desk = await make_desk(client, owner)
    for number, minutes in enumerate([4, 6, 6, 100], start=900):
        owner.execute(
            "insert into public.tickets (organization_id, queue_id, service_date, number,"
            " status, serving_at, finished_at)"
            " values (%s, %s, current_date - 2, %s, 'waiting', now() - %s * interval '1 minute'"
            " - interval '1 hour', now() - interval '1 hour')",
            (desk.org_id, desk.queue_id, number, minutes),
        )
    # Served history written directly: the status trigger only lets a ticket start waiting.
    # The daily rollup's trigger is deferred, and no ALTER may follow a pending one.
    owner.execute(
        "set constraints all immediate;"
        " alter table public.tickets disable trigger tickets_change_rules;"
        " update public.tickets set status = 'served' where number >= 900;"
        " alter table public.tickets enable trigger tickets_change_rules"
    )
    tickets = [await join(client, desk.queue_id, make_user(owner)) for _ in range(3)]

    state = (await client.get(f"/v1/queues/{desk.queue_id}")).json()

    assert state["average_service_minutes"] == 6.0
    assert state["estimate_error_minutes"] is None
    assert [t["estimated_wait_minutes"] for t in tickets] == [0, 6, 12]
    await act(client, desk.staff, tickets[0]["id"], "call", counter="1")
    await act(client, desk.staff, tickets[1]["id"], "call", counter="2")
    owner.execute(
        "update public.tickets set actual_wait_minutes = 10 where id = %s", (tickets[1]["id"],)
    )
    third = await client.get(f"/v1/tickets/{tickets[2]['id']}", headers=desk.staff.headers)
    assert third.json()["position"] == 1
    assert third.json()["estimated_wait_minutes"] == 0
    state = (await client.get(f"/v1/queues/{desk.queue_id}")).json()
    assert state["estimate_error_minutes"] == pytest.approx(2.0, abs=0.1)
