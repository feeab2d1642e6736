from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar, Event

from tests.appointments.arrange import Clinic, book, make_clinic, soon
from tests.factories import Owner, User, make_user

pytestmark = pytest.mark.anyio

PARIS = ZoneInfo("Europe/Paris")


def _insert(
    owner: Owner, clinic: Clinic, customer: User, starts_at: datetime, status: str = "booked"
) -> str:
    row = owner.execute(
        "insert into public.appointments"
        " (organization_id, service_id, customer_id, starts_at, ends_at)"
        " values (%s, %s, %s, %s, %s) returning id",
        (
            clinic.org_id,
            clinic.service_id,
            customer.id,
            starts_at,
            starts_at + timedelta(minutes=30),
        ),
    ).fetchone()
    assert row is not None
    if status != "booked":
        owner.execute("update public.appointments set status = %s where id = %s", (status, row[0]))
    return str(row[0])


def _parse(response: httpx.Response) -> Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


def _events(calendar: Calendar) -> dict[str, Event]:
    return {str(e["uid"]).split("@")[0]: e for e in calendar.walk("VEVENT")}


def _next_transition(zone: ZoneInfo, after: datetime) -> datetime:
    """The first local midnight after `after` whose UTC offset differs from the day before."""
    day = after.astimezone(zone).date()
    while True:
        before = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
        day += timedelta(days=1)
        if datetime.combine(day, time(12), tzinfo=zone).utcoffset() != before:
            return datetime.combine(day, time(0), tzinfo=zone)


def _clinic(owner: Owner) -> Clinic:
    clinic = make_clinic(owner, capacity=10)
    owner.execute(
        "update public.organizations set name = 'Clinique Voltaire', address = '12 rue Voltaire,"
        " Paris' where id = %s",
        (clinic.org_id,),
    )
    owner.execute(
        "update public.services set name = 'Dental check-up' where id = %s", (clinic.service_id,)
    )
    return clinic


async def test_an_event_keeps_the_wall_clock_time_across_the_october_change(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = _clinic(owner)
    customer = make_user(owner)
    # 2026-10-25 is the change from CEST (+02:00) to CET (+01:00).
    before = _insert(owner, clinic, customer, datetime(2026, 10, 20, 10, tzinfo=PARIS))
    after = _insert(owner, clinic, customer, datetime(2026, 11, 2, 10, tzinfo=PARIS))

    starts = {}
    for appointment_id in (before, after):
        calendar = _parse(
            await client.get(f"/v1/appointments/{appointment_id}.ics", headers=customer.headers)
        )
        [event] = calendar.walk("VEVENT")
        assert str(event["uid"]) == f"{appointment_id}@slotease.dev"
        assert event["dtstart"].params["TZID"] == "Europe/Paris"
        assert event.decoded("dtstart").time() == time(10, 0)
        assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(minutes=30)
        assert str(event["summary"]) == "Dental check-up · Clinique Voltaire"
        assert str(event["location"]) == "12 rue Voltaire, Paris"
        assert str(event["status"]) == "CONFIRMED"
        assert "dtstamp" in event
        [zone] = calendar.walk("VTIMEZONE")
        assert str(zone["tzid"]) == "Europe/Paris"
        # The calendar's own VTIMEZONE, not the client's zone database, gives the instant.
        offsets = {
            (o.decoded("dtstart"), o.decoded("tzoffsetto"))
            for o in zone.walk()
            if o.name in ("STANDARD", "DAYLIGHT")
        }
        local = event.decoded("dtstart").replace(tzinfo=None)
        offset = max((s, off) for s, off in offsets if s <= local)[1]
        starts[appointment_id] = local - offset
    assert starts == {before: datetime(2026, 10, 20, 8), after: datetime(2026, 11, 2, 9)}


async def test_who_may_read_an_event(client: httpx.AsyncClient, owner: Owner) -> None:
    clinic = _clinic(owner)
    customer = make_user(owner)
    appointment_id = _insert(owner, clinic, customer, clinic.at(soon(clinic), "10:00"))
    path = f"/v1/appointments/{appointment_id}.ics"

    assert (await client.get(path, headers=clinic.staff.headers)).status_code == 200
    assert (await client.get(path, headers=make_user(owner).headers)).status_code == 404
    assert (
        await client.get(f"/v1/appointments/{uuid.uuid4()}.ics", headers=customer.headers)
    ).status_code == 404
    assert (await client.get(path)).status_code == 401


async def test_the_sequence_rises_with_each_move_and_a_cancel_is_cancelled(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = _clinic(owner)
    customer = make_user(owner)
    day = soon(clinic)
    booked = await book(client, customer, clinic, clinic.at(day, "10:00"))
    assert booked.status_code == 201
    path = f"/v1/appointments/{booked.json()['id']}"

    async def event() -> Event:
        [found] = _parse(await client.get(path + ".ics", headers=customer.headers)).walk("VEVENT")
        return found

    assert (await event())["sequence"] == 0
    moved = await client.put(
        path, json={"starts_at": clinic.at(day, "11:00").isoformat()}, headers=customer.headers
    )
    assert moved.status_code == 200
    assert (
        await client.put(path, json={"notes": "back door"}, headers=customer.headers)
    ).status_code == 200
    after_move = await event()
    assert (after_move["sequence"], after_move.decoded("dtstart")) == (1, clinic.at(day, "11:00"))
    assert (await client.delete(path, headers=customer.headers)).status_code == 200
    cancelled = await event()
    assert (cancelled["sequence"], str(cancelled["status"])) == (2, "CANCELLED")


async def test_the_feed_lists_my_appointments_in_local_time_across_a_dst_change(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    clinic = _clinic(owner)
    customer = make_user(owner)
    change = _next_transition(PARIS, datetime.now(UTC))
    week_before = _insert(
        owner,
        clinic,
        customer,
        datetime.combine((change - timedelta(days=7)).date(), time(10), tzinfo=PARIS),
    )
    week_after = _insert(
        owner,
        clinic,
        customer,
        datetime.combine((change + timedelta(days=7)).date(), time(10), tzinfo=PARIS),
    )
    now = datetime.now(PARIS)
    recent = _insert(owner, clinic, customer, now - timedelta(days=20), status="cancelled")
    _insert(owner, clinic, customer, now - timedelta(days=40))
    # The feed's user is also staff of the clinic: they see this one, but it is not theirs.
    _insert(owner, clinic, make_user(owner), now + timedelta(days=3))
    owner.execute(
        "insert into public.organization_members (organization_id, user_id, role)"
        " values (%s, %s, 'staff')",
        (clinic.org_id, customer.id),
    )

    issued = await client.post("/v1/me/calendar-token", headers=customer.headers)
    assert issued.status_code == 201
    body = issued.json()
    assert body["url"].startswith("http://test/v1/me/calendar.ics?token=")
    stored = owner.execute(
        "select token_hash from public.calendar_feed_tokens where user_id = %s", (customer.id,)
    ).fetchone()
    assert stored == (hashlib.sha256(body["token"].encode()).hexdigest(),)

    events = _events(_parse(await client.get(body["url"].removeprefix("http://test"))))
    assert set(events) == {week_before, week_after, recent}
    assert str(events[recent]["status"]) == "CANCELLED"
    utc = {k: events[k].decoded("dtstart").astimezone(UTC) for k in (week_before, week_after)}
    assert [events[k].decoded("dtstart").time() for k in utc] == [time(10), time(10)]
    assert utc[week_before].hour != utc[week_after].hour


async def test_feed_tokens_are_replaced_and_revoked(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    customer = make_user(owner)
    first = (await client.post("/v1/me/calendar-token", headers=customer.headers)).json()["token"]
    second = (await client.post("/v1/me/calendar-token", headers=customer.headers)).json()["token"]
    feed = "/v1/me/calendar.ics"

    assert (await client.get(feed, params={"token": second})).status_code == 200
    assert (await client.get(feed, params={"token": first})).status_code == 401
    assert (await client.get(feed, params={"token": "cal_unknown"})).status_code == 401
    assert (await client.get(feed)).status_code == 422
    assert (await client.post("/v1/me/calendar-token")).status_code == 401

    assert (
        await client.delete("/v1/me/calendar-token", headers=customer.headers)
    ).status_code == 204
    assert (await client.get(feed, params={"token": second})).status_code == 401
    assert owner.execute(
        "select count(*) from public.calendar_feed_tokens where user_id = %s", (customer.id,)
    ).fetchone() == (0,)
