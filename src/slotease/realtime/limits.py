"""What one WebSocket client may send: the size of a message and how many, how fast."""

from __future__ import annotations

import time

from starlette.types import Message

# Close codes (RFC 6455, section 7.4.1).
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009


def message_text(message: Message, max_bytes: int) -> str | None:
    """The text of a received frame, or None when it is larger than `max_bytes`."""
    data = message.get("bytes")
    if data is not None:
        return None if len(data) > max_bytes else data.decode(errors="replace")
    text: str = message.get("text") or ""
    # A character takes at most four bytes in UTF-8: most texts are decided without encoding.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        return None
    return text


class MessageBudget:
    """A token bucket per connection: `burst` messages at once, refilled at `per_second`."""

    __slots__ = ("_burst", "_per_second", "_tokens", "_updated")

    def __init__(self, per_second: float, burst: int) -> None:
        self._per_second = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def spend(self) -> bool:
        """Take one message from the budget; False when it is exhausted."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_second)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
