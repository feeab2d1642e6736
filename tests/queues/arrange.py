"""A clinic with a queue, its staff and customers, arranged through the owner and the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.factories import Owner, User, add_member, make_organization, make_user


@dataclass(frozen=True)
class Desk:
    org_id: uuid.UUID
    queue_id: uuid.UUID
    admin: User
    staff: User


async def make_desk(
    client: httpx.AsyncClient,
    owner: Owner,
    *,
    tz: str = "Europe/Paris",
    prefix: str = "A",
    settings: dict[str, Any] | None = None,
    service_id: uuid.UUID | None = None,
) -> Desk:
    admin = make_user(owner, name="Admin")
    staff = make_user(owner, name="Staff")
    org_id = make_organization(owner, admin, tz=tz)
    add_member(owner, org_id, staff, "staff")
    queue_id = await add_queue(
        client, org_id, admin, prefix=prefix, settings=settings, service_id=service_id
    )
    return Desk(org_id=org_id, queue_id=queue_id, admin=admin, staff=staff)


async def add_queue(
    client: httpx.AsyncClient,
    org_id: uuid.UUID,
    admin: User,
    *,
    prefix: str = "A",
    settings: dict[str, Any] | None = None,
    service_id: uuid.UUID | None = None,
) -> uuid.UUID:
    body: dict[str, Any] = {"name": f"Desk {prefix}", "prefix": prefix}
    if settings is not None:
        body["settings"] = settings
    if service_id is not None:
        body["service_id"] = str(service_id)
    response = await client.post(
        f"/v1/organizations/{org_id}/queues", json=body, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def join(
    client: httpx.AsyncClient, queue_id: uuid.UUID, user: User, **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/v1/queues/{queue_id}/tickets", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def act(
    client: httpx.AsyncClient, staff: User, ticket_id: str, action: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/v1/queue/update",
        json={"ticket_id": ticket_id, "action": action, **extra},
        headers=staff.headers,
    )


async def positions(client: httpx.AsyncClient, desk: Desk) -> dict[str, int]:
    """Number → position of every waiting ticket, as the staff view shows it."""
    response = await client.get(f"/v1/queues/{desk.queue_id}", headers=desk.staff.headers)
    assert response.status_code == 200
    return {
        t["number"]: t["position"] for t in response.json()["tickets"] if t["status"] == "waiting"
    }


def ticket_row(owner: Owner, ticket_id: str) -> tuple[Any, ...]:
    row = owner.execute(
        "select status, counter, priority, line_position_at, called_at from public.tickets"
        " where id = %s",
        (ticket_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)
