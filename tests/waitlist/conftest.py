from __future__ import annotations

import pytest

from slotease.config import Settings

OFFER_MINUTES = 7


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    """A hold other than the default, to see that the setting reaches the database."""
    return settings.model_copy(update={"waitlist_offer_minutes": OFFER_MINUTES})
