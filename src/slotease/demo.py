"""The demo data set: seeded by `slotease demo` and `slotease serve --demo`."""

from __future__ import annotations

from slotease.config import Settings


def seed_demo(settings: Settings) -> str:
    raise NotImplementedError
