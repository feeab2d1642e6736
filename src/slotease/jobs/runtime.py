"""What running tasks need (the database, the settings, what features hand in), installed by
whoever runs the worker: `slotease worker`, the in-process worker of `slotease serve`, or a
test. Features' tasks read it with `current()`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from slotease.config import Settings
from slotease.db.database import Database
from slotease.kit.events import EventBus

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    # The application's bus: the periodic tasks' changes are announced like a request's.
    events: EventBus
    # What features' tasks need beyond the database (the notifications deliverer), found by
    # type: the worker entry point hands them in, so that jobs/ names no feature.
    resources: tuple[object, ...] = ()

    def resource(self, kind: type[T]) -> T:
        for resource in self.resources:
            if isinstance(resource, kind):
                return resource
        raise RuntimeError(f"the job runtime has no {kind.__name__}")


_installed: list[Runtime] = []


def install(runtime: Runtime) -> Callable[[], None]:
    _installed.append(runtime)
    return lambda: _installed.remove(runtime)


def current() -> Runtime:
    if not _installed:
        raise RuntimeError("no job runtime is installed: start the worker through slotease")
    return _installed[-1]
