from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from slotease.app import create_app
from slotease.config import Settings
from tests.appointments.arrange import Clinic, book, make_clinic, soon
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio


async def _slots(client: httpx.AsyncClient, clinic: Clinic, days: int = 5) -> dict[str, int]:
    day = str(soon(clinic, days))
    response = await client.get(
        "/v1/available-slots",
        params={"service_id": str(clinic.service_id), "from": day, "to": day},
    )
    assert response.status_code == 200
    return {slot["starts_at"]: slot["remaining"] for slot in response.json()["slots"]}


async def test_slots_of_a_day_in_the_organization_zone(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=2, tz="America/New_York", duration=60)
    day = soon(clinic)
    owner.execute(
        "insert into public.service_closures (organization_id, service_id, starts_at, ends_at)"
        " values (%s, %s, %s, %s)",
        (clinic.org_id, clinic.service_id, clinic.at(day, "12:00"), clinic.at(day, "13:30")),
    )

    response = await client.get(
        "/v1/available-slots",
        params={"service_id": str(clinic.service_id), "from": str(day), "to": str(day)},
    )

    body = response.json()
    assert body["service_id"] == str(clinic.service_id)
    assert body["timezone"] == "America/New_York"
    hours = ["09:00", "10:00", "11:00", "14:00", "15:00", "16:00"]
    assert body["slots"] == [
        {
            "starts_at": clinic.at(day, h).isoformat(),
            "ends_at": (clinic.at(day, h) + timedelta(hours=1)).isoformat(),
            "remaining": 2,
        }
        for h in hours
    ]


async def test_a_booking_is_visible_as_soon_as_it_answers(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=2)
    ten = clinic.at(soon(clinic), "10:00").isoformat()
    assert (await _slots(client, clinic))[ten] == 2  # now cached

    first = await book(client, make_user(owner), clinic, clinic.at(soon(clinic), "10:00"))
    assert (await _slots(client, clinic))[ten] == 1
    await book(client, make_user(owner), clinic, clinic.at(soon(clinic), "10:00"))
    assert ten not in await _slots(client, clinic)
    await client.delete(f"/v1/appointments/{first.json()['id']}", headers=clinic.staff.headers)
    assert (await _slots(client, clinic))[ten] == 1


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"from": "2026-03-10", "to": "2026-03-09"}, 422),
        ({"from": "2026-01-01", "to": "2026-03-04"}, 422),
        ({"from": "2026-01-01"}, 422),
        ({"from": "someday", "to": "2026-01-02"}, 422),
        ({"from": "2026-01-01", "to": "2026-03-03", "service_id": "unknown"}, 404),
        ({"from": "2026-01-01", "to": "2026-01-01", "service_id": "inactive"}, 404),
        ({"from": "2026-01-01", "to": "2026-01-01", "service_id": "not-a-uuid"}, 422),
    ],
)
async def test_bad_ranges_and_unknown_services(
    client: httpx.AsyncClient, owner: Owner, params: dict[str, str], status: int
) -> None:
    active = make_clinic(owner).service_id
    inactive = make_clinic(owner).service_id
    owner.execute("update public.services set is_active = false where id = %s", (inactive,))
    query = dict(params)
    query["service_id"] = {
        "unknown": str(uuid.uuid4()),
        "inactive": str(inactive),
        "not-a-uuid": "not-a-uuid",
    }.get(params.get("service_id", ""), str(active))

    response = await client.get("/v1/available-slots", params=query)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_62_day_range_is_accepted(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    first = soon(clinic, 1)
    response = await client.get(
        "/v1/available-slots",
        params={
            "service_id": str(clinic.service_id),
            "from": str(first),
            "to": str(first + timedelta(days=61)),
        },
    )
    assert response.status_code == 200
    # 60 days of advance from now: the last days of the range offer nothing.
    days = {slot["starts_at"][:10] for slot in response.json()["slots"]}
    assert str(first) in days
    assert str(first + timedelta(days=61)) not in days


@pytest.fixture
async def redis_client(settings: Settings, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"redis_url": redis_url}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


async def test_the_redis_cache_is_invalidated_by_bookings(
    redis_client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = make_clinic(owner, capacity=3)
    ten = clinic.at(soon(clinic), "10:00").isoformat()
    assert (await _slots(redis_client, clinic))[ten] == 3

    await book(redis_client, make_user(owner), clinic, clinic.at(soon(clinic), "10:00"))

    assert (await _slots(redis_client, clinic))[ten] == 2
