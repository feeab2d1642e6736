"""Reminder offsets such as "24h,1h": how long before an appointment each reminder goes out."""

from __future__ import annotations

from datetime import timedelta

from slotease.kit.durations import parse_duration


def parse_offsets(text: str) -> dict[str, timedelta]:
    """Offsets by their label ("24h"), which also names the reminder's job lock."""
    offsets: dict[str, timedelta] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            offsets[part] = parse_duration(part)
        except ValueError:
            raise ValueError(f"expected offsets like '24h,1h' or '2d,30m', got {part!r}") from None
    return offsets
