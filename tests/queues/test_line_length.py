"""What a change of a queue costs does not grow with its line: the same events and the same
statements whether 10 or 200 tickets wait, and the range of positions that moved is named
instead of one event per waiting ticket."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from slotease.kit.events import DomainEvent
from tests.factories import Owner, make_user
from tests.queues.arrange import Desk, act, join, make_desk

pytestmark = pytest.mark.anyio


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the app in this process sends, in order."""
    sent: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counting(self: psycopg.AsyncCursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        sent.append(str(query))
        return await execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counting)
    return sent


def fill_line(owner: Owner, desk: Desk, waiting: int) -> None:
    """`waiting` walk-ins who joined a second apart, written directly (not what is measured)."""
    owner.execute(
        "insert into public.tickets (organization_id, queue_id, service_date, number,"
        " line_position_at)"
        " select %(org)s, %(queue)s, current_date, 100 + g, now() - make_interval(secs => 1000 - g)"
        " from generate_series(1, %(n)s) g",
        {"org": desk.org_id, "queue": desk.queue_id, "n": waiting},
    )


async def _call(client: httpx.AsyncClient, desk: Desk) -> None:
    response = await client.post(
        f"/v1/queues/{desk.queue_id}/call-next", json={"counter": "1"}, headers=desk.staff.headers
    )
    assert response.status_code == 200, response.text


async def _costs(
    client: httpx.AsyncClient,
    owner: Owner,
    events: list[DomainEvent],
    statements: list[str],
    waiting: int,
) -> dict[str, tuple[list[str], int]]:
    """Per kind of change on a line of `waiting` tickets: the events it published and how many
    statements it sent."""
    desk = await make_desk(client, owner)
    fill_line(owner, desk, waiting)
    holder = make_user(owner)
    other = await join(client, desk.queue_id, holder)
    target = await client.post(
        f"/v1/organizations/{desk.org_id}/queues",
        json={"name": "Other desk", "prefix": "B"},
        headers=desk.admin.headers,
    )
    assert target.status_code == 201, target.text
    line_ids = [
        str(row[0])
        for row in owner.execute(
            "select id from public.tickets where queue_id = %s and status = 'waiting'"
            " order by line_position_at",
            (desk.queue_id,),
        ).fetchall()
    ]
    changes = {
        "call-next": lambda: _call(client, desk),
        "join": lambda: join(client, desk.queue_id, make_user(owner)),
        "cancel": lambda: client.delete(f"/v1/tickets/{other['id']}", headers=holder.headers),
        "transfer": lambda: act(
            client, desk.staff, line_ids[3], "transfer", target_queue_id=target.json()["id"]
        ),
        "set_priority": lambda: act(client, desk.staff, line_ids[5], "set_priority", priority=9),
    }
    costs = {}
    for name, change in changes.items():
        events.clear()
        statements.clear()
        await change()
        costs[name] = ([e.name for e in events], len(statements))
    return costs


async def test_changes_cost_the_same_with_10_and_with_200_waiting(
    client: httpx.AsyncClient,
    owner: Owner,
    events: list[DomainEvent],
    statements: list[str],
) -> None:
    short = await _costs(client, owner, events, statements, 10)
    long = await _costs(client, owner, events, statements, 200)
    assert short == long
    assert short["call-next"][0] == ["ticket.called", "queue.moved", "queue.updated"]
    assert "ticket.position" not in {name for names, _ in short.values() for name in names}


async def test_queue_moved_names_the_positions_that_changed(
    client: httpx.AsyncClient, owner: Owner, events: list[DomainEvent]
) -> None:
    desk = await make_desk(client, owner)
    users = [make_user(owner) for _ in range(5)]
    tickets = [await join(client, desk.queue_id, user) for user in users]

    def moved() -> tuple[int, int] | None:
        found = [e.payload for e in events if e.name == "queue.moved"]
        events.clear()
        return (found[0]["first_moved"], found[0]["last_moved"]) if found else None

    events.clear()
    assert moved() is None
    await join(client, desk.queue_id, make_user(owner))  # at the back: nobody moves
    assert moved() is None
    walk_in = await client.post(
        f"/v1/queues/{desk.queue_id}/tickets", json={"priority": 5}, headers=desk.staff.headers
    )
    assert walk_in.status_code == 201
    assert walk_in.json()["position"] == 1
    assert moved() == (2, 7)  # everyone behind the walk-in
    cancelled = await client.delete(f"/v1/tickets/{tickets[2]['id']}", headers=users[2].headers)
    assert cancelled.status_code == 200
    assert moved() == (4, 6)  # the third customer stood 4th
    raised = await act(client, desk.staff, tickets[4]["id"], "set_priority", priority=3)
    assert raised.status_code == 200
    assert raised.json()["position"] == 2
    assert moved() == (2, 5)  # from its new place to its old one
    await _call(client, desk)
    assert moved() == (1, 5)
