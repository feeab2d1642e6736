"""What running tasks need (the database, the deliverer), installed by whoever runs the
worker: `slotease worker`, the in-process worker of `slotease serve`, or a test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slotease.config import Settings
from slotease.db.database import Database
from slotease.notifications.delivery import Deliverer


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    deliverer: Deliverer


_installed: list[Runtime] = []


def install(runtime: Runtime) -> Callable[[], None]:
    _installed.append(runtime)
    return lambda: _installed.remove(runtime)


def current() -> Runtime:
    if not _installed:
        raise RuntimeError("no job runtime is installed: start the worker through slotease")
    return _installed[-1]
