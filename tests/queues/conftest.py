from __future__ import annotations

import pytest

from slotease.config import Settings


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    """Room for the races: 20 concurrent call-next requests share this pool."""
    return settings.model_copy(update={"pool_max_size": 22})
