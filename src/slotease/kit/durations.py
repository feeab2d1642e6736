"""Durations written the way settings take them: "30d", "24h", "15m"."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    """A positive number of days, hours or minutes; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"expected a duration like '30d', '24h' or '15m', got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
