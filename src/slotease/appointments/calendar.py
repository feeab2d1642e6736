"""iCalendar (RFC 5545) documents of appointments, for one event or a user's feed.

Times are written in the organization's zone (`DTSTART;TZID=...`) with a VTIMEZONE generated
from the IANA database for the span of the events, so a client shows the wall-clock time the
organization keeps, before and after a DST change, without knowing the zone itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

# Stable across deployments, so a re-imported event replaces its earlier copy.
UID_DOMAIN = "slotease.dev"
PRODID = "-//SlotEase//Appointments//EN"


@dataclass(frozen=True)
class CalendarEntry:
    id: UUID
    starts_at: datetime
    ends_at: datetime
    status: str
    revision: int
    updated_at: datetime
    service_name: str | None
    organization_name: str | None
    address: str | None
    timezone: str


def _event(entry: CalendarEntry) -> Event:
    zone = ZoneInfo(entry.timezone)
    event = Event()
    event.add("uid", f"{entry.id}@{UID_DOMAIN}")
    # Without a METHOD, DTSTAMP is when the information last changed (RFC 5545, 3.8.7.2).
    event.add("dtstamp", entry.updated_at.astimezone(UTC))
    event.add("dtstart", entry.starts_at.astimezone(zone))
    event.add("dtend", entry.ends_at.astimezone(zone))
    event.add("summary", " · ".join(n for n in (entry.service_name, entry.organization_name) if n))
    if entry.address:
        event.add("location", entry.address)
    event.add("status", "CANCELLED" if entry.status == "cancelled" else "CONFIRMED")
    event.add("sequence", entry.revision)
    return event


def render(entries: Sequence[CalendarEntry], *, name: str | None = None) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    if name:
        calendar.add("x-wr-calname", name)
    for entry in entries:
        calendar.add_component(_event(entry))
    if entries:
        # A day either side covers every UTC offset of the events' local dates.
        calendar.add_missing_timezones(
            first_date=min(e.starts_at for e in entries).date() - timedelta(days=1),
            last_date=max(e.ends_at for e in entries).date() + timedelta(days=1),
        )
    return bytes(calendar.to_ical())
