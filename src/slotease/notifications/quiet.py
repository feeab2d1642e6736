"""Quiet hours: wall-clock times in the recipient's timezone, possibly across midnight."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def quiet_until(quiet_hours: dict[str, Any] | None, now: datetime) -> datetime | None:
    """The end of the quiet period `now` falls in, or None when messages may go out."""
    if not quiet_hours:
        return None
    zone = ZoneInfo(quiet_hours.get("timezone") or "UTC")
    start = time.fromisoformat(quiet_hours["start"])
    end = time.fromisoformat(quiet_hours["end"])
    local = now.astimezone(zone)
    moment = local.time().replace(tzinfo=None)
    if start == end:
        return None
    if start < end:
        quiet = start <= moment < end
        end_day = local.date()
    else:
        quiet = moment >= start or moment < end
        end_day = local.date() + timedelta(days=1) if moment >= start else local.date()
    if not quiet:
        return None
    return datetime.combine(end_day, end, tzinfo=zone)
