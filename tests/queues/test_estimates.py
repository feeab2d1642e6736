from __future__ import annotations

from slotease.queues.estimates import (
    DEFAULT_SERVICE_MINUTES,
    ServiceHistory,
    mean_absolute_error,
    observed_service_minutes,
    service_minutes,
    wait_minutes,
)


def test_the_median_ignores_an_outlier() -> None:
    history = ServiceHistory(minutes=[5, 5, 6, 120], hours=[9, 9, 9, 9])
    assert observed_service_minutes(history, hour=14) == 5.5


def test_an_hour_with_enough_history_uses_its_own_pace() -> None:
    history = ServiceHistory(minutes=[12.0] * 8 + [4.0] * 20, hours=[10] * 8 + [15] * 20)
    assert observed_service_minutes(history, hour=10) == 12.0
    assert observed_service_minutes(history, hour=15) == 4.0
    assert observed_service_minutes(history, hour=11) == 4.0


def test_without_history_the_service_duration_or_a_default_applies() -> None:
    empty = ServiceHistory(minutes=[], hours=[])
    assert observed_service_minutes(empty, hour=9) is None
    assert service_minutes(empty, 9, fallback=20) == 20
    assert service_minutes(empty, 9, fallback=None) == DEFAULT_SERVICE_MINUTES


def test_the_wait_is_shared_by_active_counters_and_rounded_up() -> None:
    assert wait_minutes(1, 7.0, counters=1) == 0
    assert wait_minutes(4, 7.0, counters=1) == 21
    assert wait_minutes(4, 7.0, counters=2) == 11
    assert wait_minutes(4, 7.0, counters=0) == 21


def test_mean_absolute_error_of_recent_calls() -> None:
    assert mean_absolute_error([], []) is None
    assert mean_absolute_error([10, 0], [7, 5]) == 4.0
    assert mean_absolute_error([0] * 60, [1] * 50 + [100] * 10) == 1.0
