"""Wait estimates that learn from the line itself. Pure functions: no I/O, no clock.

A queue's service time is the median of its recently served tickets (robust to the odd
hour-long case and to tickets closed by mistake in seconds), taken from the same hour of day
when that hour has enough history, since service often runs slower at rush hours. The wait
of a ticket is the work ahead of it shared by the counters working now.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

RECENT_SAMPLES = 50
MIN_HOUR_SAMPLES = 8
# Before a queue has history and without a linked service, a typical counter interaction.
DEFAULT_SERVICE_MINUTES = 5.0


@dataclass(frozen=True)
class ServiceHistory:
    """Recently served tickets of a queue, newest first: minutes each took and the local hour
    its service started in."""

    minutes: Sequence[float]
    hours: Sequence[int]


def observed_service_minutes(history: ServiceHistory, hour: int) -> float | None:
    """The median service time of this hour of day when it has enough samples, else of the
    most recent tickets; None without any history."""
    same_hour = [m for m, h in zip(history.minutes, history.hours, strict=True) if h == hour]
    if len(same_hour) >= MIN_HOUR_SAMPLES:
        return statistics.median(same_hour[:RECENT_SAMPLES])
    if not history.minutes:
        return None
    return statistics.median(history.minutes[:RECENT_SAMPLES])


def service_minutes(history: ServiceHistory, hour: int, fallback: float | None) -> float:
    """The service time estimates use: observed, else the linked service's duration."""
    observed = observed_service_minutes(history, hour)
    if observed is not None:
        return observed
    return fallback if fallback is not None else DEFAULT_SERVICE_MINUTES


def wait_minutes(position: int, minutes_per_ticket: float, counters: int) -> int:
    """The wait of the ticket at `position` (1 is next): the tickets ahead of it, served in
    parallel by the counters active now (at least one)."""
    ahead = max(position - 1, 0)
    return math.ceil(ahead * minutes_per_ticket / max(counters, 1))


def mean_absolute_error(quoted: Sequence[float], actual: Sequence[float]) -> float | None:
    """How far quoted waits were from the real ones, in minutes; None before any call."""
    pairs = list(zip(quoted, actual, strict=True))[:RECENT_SAMPLES]
    if not pairs:
        return None
    return sum(abs(q - a) for q, a in pairs) / len(pairs)
