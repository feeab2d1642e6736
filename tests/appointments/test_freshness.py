"""Availability is never stale: whatever changes what a service offers, through the API or
straight in the database, shows in the next answer, from every server process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from slotease.app import create_app
from slotease.config import Settings
from tests.appointments.arrange import Clinic, book, insert_as_owner, make_clinic, soon
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio

Change = Callable[[httpx.AsyncClient, Owner, Clinic], Awaitable[None]]


async def _answer(client: httpx.AsyncClient, clinic: Clinic) -> httpx.Response:
    day = str(soon(clinic))
    return await client.get(
        "/v1/available-slots",
        params={"service_id": str(clinic.service_id), "from": day, "to": day},
    )


async def _slots(client: httpx.AsyncClient, clinic: Clinic) -> dict[str, dict[str, Any]]:
    response = await _answer(client, clinic)
    assert response.status_code == 200, response.text
    return {slot["starts_at"]: slot for slot in response.json()["slots"]}


def _ten(clinic: Clinic) -> str:
    return clinic.at(soon(clinic), "10:00").isoformat()


async def _patch(client: httpx.AsyncClient, clinic: Clinic, path: str, body: Any) -> None:
    response = await client.patch(path, json=body, headers=clinic.admin.headers)
    assert response.status_code == 200, response.text


async def _closure_through_the_api(client: httpx.AsyncClient, owner: Owner, clinic: Clinic) -> None:
    day = soon(clinic)
    response = await client.post(
        f"/v1/services/{clinic.service_id}/closures",
        json={
            "starts_at": clinic.at(day, "10:00").isoformat(),
            "ends_at": clinic.at(day, "12:00").isoformat(),
        },
        headers=clinic.admin.headers,
    )
    assert response.status_code == 201, response.text


async def _closure_through_psql(client: httpx.AsyncClient, owner: Owner, clinic: Clinic) -> None:
    day = soon(clinic)
    owner.execute(
        "insert into public.service_closures (organization_id, service_id, starts_at, ends_at)"
        " values (%s, %s, %s, %s)",
        (clinic.org_id, clinic.service_id, clinic.at(day, "10:00"), clinic.at(day, "12:00")),
    )


async def _working_hours_through_the_api(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic
) -> None:
    week = [{"weekday": d, "start": "13:00", "end": "17:00"} for d in range(7)]
    await _patch(client, clinic, f"/v1/services/{clinic.service_id}", {"working_hours": week})


async def _working_hours_through_psql(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic
) -> None:
    owner.execute(
        "update public.service_working_hours set start_time = '13:00' where service_id = %s",
        (clinic.service_id,),
    )


async def _capacity_through_the_api(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic
) -> None:
    await _patch(client, clinic, f"/v1/services/{clinic.service_id}", {"capacity": 4})


async def _duration_through_psql(client: httpx.AsyncClient, owner: Owner, clinic: Clinic) -> None:
    owner.execute(
        "update public.services set duration_minutes = 60, slot_interval_minutes = 60"
        " where id = %s",
        (clinic.service_id,),
    )


async def _deactivation_through_the_api(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic
) -> None:
    await _patch(client, clinic, f"/v1/services/{clinic.service_id}", {"is_active": False})


async def _timezone_through_the_api(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic
) -> None:
    await _patch(client, clinic, f"/v1/organizations/{clinic.org_id}", {"timezone": "Asia/Tokyo"})


async def _appointment_through_psql(
    client: httpx.AsyncClient, owner: Owner, clinic: Clinic
) -> None:
    insert_as_owner(owner, clinic, make_user(owner), clinic.at(soon(clinic), "10:00"))


def _ten_is_gone(response: httpx.Response, clinic: Clinic) -> bool:
    return _ten(clinic) not in {slot["starts_at"] for slot in response.json()["slots"]}


def _ten_lasts_an_hour(response: httpx.Response, clinic: Clinic) -> bool:
    ten = {slot["starts_at"]: slot for slot in response.json()["slots"]}[_ten(clinic)]
    return ten["ends_at"] == (clinic.at(soon(clinic), "10:00") + timedelta(hours=1)).isoformat()


def _ten_takes_four(response: httpx.Response, clinic: Clinic) -> bool:
    slots = {slot["starts_at"]: slot for slot in response.json()["slots"]}
    return bool(slots[_ten(clinic)]["remaining"] == 4)


def _not_found(response: httpx.Response, clinic: Clinic) -> bool:
    return response.status_code == 404


def _in_tokyo(response: httpx.Response, clinic: Clinic) -> bool:
    body = response.json()
    return bool(
        body["timezone"] == "Asia/Tokyo" and body["slots"][0]["starts_at"].endswith("+09:00")
    )


CHANGES: list[tuple[Change, Callable[[httpx.Response, Clinic], bool]]] = [
    (_closure_through_the_api, _ten_is_gone),
    (_closure_through_psql, _ten_is_gone),
    (_working_hours_through_the_api, _ten_is_gone),
    (_working_hours_through_psql, _ten_is_gone),
    (_capacity_through_the_api, _ten_takes_four),
    (_duration_through_psql, _ten_lasts_an_hour),
    (_deactivation_through_the_api, _not_found),
    (_timezone_through_the_api, _in_tokyo),
    (_appointment_through_psql, _ten_is_gone),
]


@pytest.mark.parametrize(
    ("change", "shows"), CHANGES, ids=[change.__name__.strip("_") for change, _ in CHANGES]
)
async def test_every_change_shows_in_the_next_answer(
    client: httpx.AsyncClient,
    owner: Owner,
    change: Change,
    shows: Callable[[httpx.Response, Clinic], bool],
) -> None:
    clinic = make_clinic(owner)
    before = await _answer(client, clinic)
    assert before.json()["slots"][2]["starts_at"] == _ten(clinic)  # now cached

    await change(client, owner, clinic)

    after = await _answer(client, clinic)
    assert shows(after, clinic), after.text


async def test_a_bulk_change_moves_each_service_on_once(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinics = [make_clinic(owner), make_clinic(owner)]
    for clinic in clinics:
        assert _ten(clinic) in await _slots(client, clinic)

    def sequence() -> int:
        row = owner.execute("select last_value from app.availability_version_seq").fetchone()
        assert row is not None
        return int(row[0])

    before = sequence()
    owner.execute(
        "update public.service_working_hours set start_time = '13:00' where service_id = any(%s)",
        ([clinic.service_id for clinic in clinics],),
    )

    # Fourteen rows changed in one statement: one new version per service.
    assert sequence() == before + 2
    for clinic in clinics:
        assert _ten(clinic) not in await _slots(client, clinic)


async def test_a_truncate_moves_every_service_on(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = make_clinic(owner)
    await _closure_through_psql(client, owner, clinic)
    assert _ten(clinic) not in await _slots(client, clinic)

    owner.execute("truncate public.service_closures")

    assert _ten(clinic) in await _slots(client, clinic)


@pytest.fixture(params=["memory", "redis"])
async def two_processes(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two app instances, as two server processes would be: each with its own in-process
    cache, or both on one Redis."""
    update = {}
    if request.param == "redis":
        update["redis_url"] = request.getfixturevalue("redis_url")
    apps = [create_app(settings.model_copy(update=update)) for _ in range(2)]

    def http(app: FastAPI) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    async with (
        apps[0].router.lifespan_context(apps[0]),
        apps[1].router.lifespan_context(apps[1]),
        http(apps[0]) as first,
        http(apps[1]) as second,
    ):
        yield first, second


async def test_a_change_through_one_process_shows_in_the_other(
    two_processes: tuple[httpx.AsyncClient, httpx.AsyncClient], owner: Owner
) -> None:
    reader, writer = two_processes
    clinic = make_clinic(owner, capacity=2)
    assert (await _slots(reader, clinic))[_ten(clinic)]["remaining"] == 2
    assert (await _slots(writer, clinic))[_ten(clinic)]["remaining"] == 2

    await _closure_through_the_api(writer, owner, clinic)
    assert _ten(clinic) not in await _slots(reader, clinic)

    two = clinic.at(soon(clinic), "14:00")
    booked = await book(writer, make_user(owner), clinic, two)
    assert booked.status_code == 201, booked.text
    assert (await _slots(reader, clinic))[two.isoformat()]["remaining"] == 1
