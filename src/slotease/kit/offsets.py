"""Reminder offsets such as "24h,1h": how long before an appointment each reminder goes out."""

from __future__ import annotations

import re
from datetime import timedelta

_OFFSET = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_offsets(text: str) -> dict[str, timedelta]:
    """Offsets by their label ("24h"), which also names the reminder's job lock."""
    offsets: dict[str, timedelta] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = _OFFSET.match(part)
        if match is None or int(match.group(1)) == 0:
            raise ValueError(f"expected offsets like '24h,1h' or '2d,30m', got {part!r}")
        offsets[part] = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return offsets
