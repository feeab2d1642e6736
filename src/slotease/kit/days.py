"""An organization's days as instants: its days are wall-clock days in its IANA zone
(architecture decision 8), so a day is 23, 24 or 25 hours long."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Interval:
    starts_at: datetime
    ends_at: datetime


def day_window(first_day: date, last_day: date, zone: ZoneInfo) -> Interval:
    """From the start of `first_day` to the end of `last_day`, local time, as instants."""
    start = datetime.combine(first_day, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return Interval(start, end)
