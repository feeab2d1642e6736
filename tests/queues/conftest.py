from __future__ import annotations

from collections.abc import Iterator

import pytest

from slotease.config import Settings
from slotease.kit.events import DomainEvent, EventBus


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    """Room for the races: 20 concurrent call-next requests share this pool."""
    return settings.model_copy(update={"pool_max_size": 22})


@pytest.fixture
def events(bus: EventBus) -> Iterator[list[DomainEvent]]:
    """The domain events the app publishes after each commit, in order."""
    heard: list[DomainEvent] = []

    async def listen(event: DomainEvent) -> None:
        heard.append(event)

    unsubscribe = bus.subscribe(listen)
    yield heard
    unsubscribe()
