"""The weekday-seasonal forecast on synthetic series whose answer is known."""

from __future__ import annotations

import random
from datetime import date, timedelta

from slotease.analytics.forecast import MIN_HISTORY, backtest, forecast

WEEK = (20.0, 25.0, 22.0, 30.0, 28.0, 8.0, 2.0)
START = date(2026, 1, 5)  # a Monday


def weekly(days: int, noise: float, seed: int = 7) -> list[tuple[date, float]]:
    rng = random.Random(seed)
    return [
        (START + timedelta(days=i), WEEK[i % 7] * (1 + rng.uniform(-noise, noise)))
        for i in range(days)
    ]


def test_a_clean_weekly_pattern_is_forecast_exactly() -> None:
    points = forecast(weekly(56, noise=0), 14)
    assert [p.day for p in points] == [START + timedelta(days=56 + i) for i in range(14)]
    assert [p.value for p in points] == [WEEK[i % 7] for i in range(14)]
    assert all(p.lower == p.value == p.upper for p in points)


def test_a_noisy_weekly_pattern_is_close_and_inside_its_interval() -> None:
    inside = total = 0
    for seed in range(30):
        history = weekly(70, noise=0.08, seed=seed)
        future = weekly(84, noise=0.08, seed=seed)[70:]
        points = forecast(history, 14)
        pairs = list(zip(points, (actual for _, actual in future), strict=True))
        assert sum(abs(p.value - a) / a for p, a in pairs) / len(pairs) < 0.10
        assert all(p.lower < p.value < p.upper for p, _ in pairs)
        inside += sum(p.lower <= a <= p.upper for p, a in pairs)
        total += len(pairs)
        error = backtest([v for _, v in history])
        assert error.mape is not None
        assert error.mape < 10
    # A 90% interval, checked over 420 forecasts.
    assert inside / total >= 0.85


def test_too_short_a_history_gives_no_forecast() -> None:
    assert forecast(weekly(MIN_HISTORY - 1, noise=0), 7) == []
    assert forecast(weekly(30, noise=0), 0) == []
    assert backtest([1.0] * (MIN_HISTORY - 1)).points == 0


def test_forecasts_never_go_below_zero() -> None:
    falling = [(START + timedelta(days=i), max(0.0, 30.0 - i)) for i in range(35)]
    assert all(p.lower >= 0 and p.value >= 0 for p in forecast(falling, 7))
