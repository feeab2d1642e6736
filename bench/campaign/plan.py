"""What the runner hands the locustfile: the campaign's ids and signed tokens, as JSON. Plain
data only, so that the load generator's processes import nothing of the server."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Centre:
    id: str
    services: list[str]
    queue: str


@dataclass(frozen=True)
class Person:
    id: str
    token: str


@dataclass(frozen=True)
class Counter:
    token: str
    queue: str
    name: str


@dataclass(frozen=True)
class Plan:
    """What the locustfile is given. `slices` splits the customers between locust's worker
    processes so that no two simulated users share an account."""

    centres: list[Centre]
    customers: list[Person]
    counters: list[Counter]
    slices: int
    window_days: int
    timezone: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> Plan:
        raw = json.loads(path.read_text())
        return cls(
            centres=[Centre(**c) for c in raw["centres"]],
            customers=[Person(**p) for p in raw["customers"]],
            counters=[Counter(**c) for c in raw["counters"]],
            slices=raw["slices"],
            window_days=raw["window_days"],
            timezone=raw["timezone"],
        )
