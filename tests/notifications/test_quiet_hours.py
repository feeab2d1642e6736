"""Quiet hours are wall-clock times in the recipient's zone, possibly across midnight."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from slotease.notifications.quiet import quiet_until

PARIS = ZoneInfo("Europe/Paris")
NIGHT = {"start": "22:00", "end": "07:00", "timezone": "Europe/Paris"}


def test_a_night_across_midnight_ends_next_morning() -> None:
    late = datetime(2026, 3, 28, 23, 30, tzinfo=PARIS)
    # The clocks go forward that night: the end is still 07:00 local.
    assert quiet_until(NIGHT, late) == datetime(2026, 3, 29, 7, 0, tzinfo=PARIS)
    early = datetime(2026, 3, 29, 6, 0, tzinfo=PARIS)
    assert quiet_until(NIGHT, early) == datetime(2026, 3, 29, 7, 0, tzinfo=PARIS)


def test_outside_quiet_hours_nothing_waits() -> None:
    assert quiet_until(NIGHT, datetime(2026, 3, 29, 12, 0, tzinfo=PARIS)) is None
    assert quiet_until(None, datetime(2026, 3, 29, 23, 0, tzinfo=PARIS)) is None


def test_the_recipients_zone_decides_not_the_servers() -> None:
    noon_utc = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("UTC"))
    tokyo = {"start": "20:00", "end": "08:00", "timezone": "Asia/Tokyo"}  # 21:00 there
    assert quiet_until(tokyo, noon_utc) == datetime(2026, 6, 2, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    daytime = {"start": "12:00", "end": "14:00", "timezone": "Europe/Paris"}  # 14:00 there
    assert quiet_until(daytime, noon_utc) is None
