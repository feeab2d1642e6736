from __future__ import annotations

import pytest

from slotease.config import Settings


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    """Room for the races: up to 50 requests in flight share this pool."""
    return settings.model_copy(update={"pool_max_size": 20})
