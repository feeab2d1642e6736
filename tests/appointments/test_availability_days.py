"""Availability is cached a day at a time: an appointment change moves on the days whose slots
it can touch and no other, and no answer ever shows a stale slot."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from fastapi import FastAPI

from slotease.kit.cache import MemoryCache
from tests.appointments.arrange import Clinic, book, insert_as_owner, make_clinic, soon
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio


class RecordingCache(MemoryCache):
    """The in-process cache, noting the keys each computation stores."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: list[list[str]] = []

    async def set_many(self, entries: dict[str, str], ttl_seconds: int) -> None:
        self.stored.append(sorted(entries))
        await super().set_many(entries, ttl_seconds)


@pytest.fixture
def cache(app: FastAPI) -> RecordingCache:
    recording = RecordingCache()
    app.state.slot_cache = recording
    return recording


async def _slots(
    client: httpx.AsyncClient, clinic: Clinic, first: date, last: date
) -> dict[str, int]:
    response = await client.get(
        "/v1/available-slots",
        params={"service_id": str(clinic.service_id), "from": str(first), "to": str(last)},
    )
    assert response.status_code == 200, response.text
    return {slot["starts_at"]: slot["remaining"] for slot in response.json()["slots"]}


def _days(keys: list[str]) -> list[str]:
    """The local dates of cache keys (`slots:<service>:<version>:<day>:<day version>`)."""
    return [key.split(":")[3] for key in keys]


async def test_a_booking_recomputes_its_day_only_and_shows_at_once(
    client: httpx.AsyncClient, owner: Owner, cache: RecordingCache
) -> None:
    clinic = make_clinic(owner, capacity=2)
    day = soon(clinic)
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    ten = clinic.at(day, "10:00")
    before = await _slots(client, clinic, first, last)
    assert [_days(keys) for keys in cache.stored] == [[str(first), str(day), str(last)]]
    assert await _slots(client, clinic, first, last) == before  # from the cache
    assert len(cache.stored) == 1

    booked = await book(client, make_user(owner), clinic, ten)
    assert booked.status_code == 201, booked.text

    after = await _slots(client, clinic, first, last)
    assert _days(cache.stored[-1]) == [str(day)]
    assert after == {**before, ten.isoformat(): 1}


async def test_a_place_across_midnight_moves_both_days_on(
    client: httpx.AsyncClient, owner: Owner, cache: RecordingCache
) -> None:
    # Open around the clock: a place from 23:00 to 23:30 with its 60-minute buffer reaches
    # into the next day, whose first slot it blocks.
    clinic = make_clinic(owner, capacity=1, buffer_minutes=60)
    owner.execute(
        "update public.service_working_hours set start_time = '00:00', end_time = '23:59'"
        " where service_id = %s",
        (clinic.service_id,),
    )
    day = soon(clinic)
    first, last = day - timedelta(days=1), day + timedelta(days=2)
    late, midnight = clinic.at(day, "23:00"), clinic.at(day + timedelta(days=1), "00:00")
    before = await _slots(client, clinic, first, last)
    assert late.isoformat() in before
    assert midnight.isoformat() in before

    insert_as_owner(owner, clinic, make_user(owner), late)

    after = await _slots(client, clinic, first, last)
    assert _days(cache.stored[-1]) == [str(day), str(day + timedelta(days=1))]
    assert late.isoformat() not in after
    assert {s for s in before if s not in after} == {
        clinic.at(day, hh_mm).isoformat() for hh_mm in ("22:00", "22:30", "23:00")
    } | {midnight.isoformat()}


async def test_a_cancellation_frees_the_place_in_the_next_answer(
    client: httpx.AsyncClient, owner: Owner, cache: RecordingCache
) -> None:
    clinic = make_clinic(owner, capacity=1)
    day = soon(clinic)
    ten = clinic.at(day, "10:00")
    booked = await book(client, make_user(owner), clinic, ten)
    assert booked.status_code == 201, booked.text
    assert ten.isoformat() not in await _slots(client, clinic, day, day)

    cancelled = await client.delete(
        f"/v1/appointments/{booked.json()['id']}", headers=clinic.staff.headers
    )
    assert cancelled.status_code == 200, cancelled.text

    assert (await _slots(client, clinic, day, day))[ten.isoformat()] == 1


async def test_a_place_after_the_last_midnight_blocks_the_last_days_late_slot(
    client: httpx.AsyncClient, owner: Owner, cache: RecordingCache
) -> None:
    # A far-west zone (UTC-11) and the longest buffer: a place at 14:00 the next day, past
    # the next UTC midnight but one, is within the 23:00 slot's place (23:30 plus a day).
    clinic = make_clinic(owner, capacity=1, tz="Pacific/Pago_Pago", buffer_minutes=1440)
    owner.execute(
        "update public.service_working_hours set start_time = '00:00', end_time = '23:59'"
        " where service_id = %s",
        (clinic.service_id,),
    )
    day = soon(clinic)
    late = clinic.at(day, "23:00")
    assert late.isoformat() in await _slots(client, clinic, day, day)

    insert_as_owner(owner, clinic, make_user(owner), clinic.at(day + timedelta(days=1), "14:00"))

    assert late.isoformat() not in await _slots(client, clinic, day, day)
