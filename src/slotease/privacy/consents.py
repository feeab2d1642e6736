"""What a person agreed to, as the rest of the code asks it. Marketing needs a yes (an
opt-in); a channel carries the messages of the service until it is withdrawn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

Purpose = Literal["marketing", "sms", "email", "push"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)
DEFAULTS: dict[str, bool] = {"marketing": False, "sms": True, "email": True, "push": True}


def granted(latest: Mapping[str, bool] | None, purpose: str) -> bool:
    """Whether `purpose` is consented to, given the latest decision per purpose (absent when
    the person never decided: then the default holds). A purpose without a consent (in-app
    messages) is always allowed."""
    if purpose not in DEFAULTS:
        return True
    decided = (latest or {}).get(purpose)
    return DEFAULTS[purpose] if decided is None else decided
