"""A weekday-seasonal forecast of a daily series, with a prediction interval from backtests.

The model: the level is the mean of the last `LEVEL_DAYS` days, and each weekday has an index
(its mean over the last `SEASON_WEEKS` weeks divided by the overall mean of those weeks). The
forecast of a day is level x index of its weekday. Bookings and queues follow the week far
more than any trend over a few weeks, and this model needs only a few weeks of history.

The interval comes from the model's own errors: it is refitted at every origin of the last
weeks, forecasts the following days, and the interval half-width is the 90th percentile of the
absolute errors seen at that horizon (pooled over horizons when too few).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

LEVEL_DAYS = 28  # a whole number of weeks
SEASON_WEEKS = 8
MIN_HISTORY = 14
COVERAGE = 0.9


@dataclass(frozen=True)
class ForecastPoint:
    day: date
    value: float
    lower: float
    upper: float


@dataclass(frozen=True)
class BacktestError:
    mae: float
    # Over the days whose actual value is not zero; None when all are zero.
    mape: float | None
    points: int


def _fit(values: list[float]) -> tuple[float, list[float]]:
    """The level and the seven weekday indexes (by position modulo 7 from the series start)."""
    # Whole weeks only, so that no weekday weighs more than another in the level.
    weeks = len(values) // 7
    level_window = values[-min(weeks, LEVEL_DAYS // 7) * 7 :]
    level = sum(level_window) / len(level_window)
    season = values[-min(weeks, SEASON_WEEKS) * 7 :]
    offset = len(values) - len(season)
    overall = sum(season) / len(season)
    indexes = []
    for slot in range(7):
        days = [v for i, v in enumerate(season) if (offset + i) % 7 == slot]
        indexes.append((sum(days) / len(days)) / overall if days and overall else 1.0)
    return level, indexes


def _predict(values: list[float], horizon: int) -> list[float]:
    level, indexes = _fit(values)
    start = len(values)
    return [level * indexes[(start + h) % 7] for h in range(horizon)]


def _backtest_pairs(values: list[float], horizon: int) -> Iterator[tuple[int, float, float]]:
    """(horizon index, actual, forecast) of forecasts made from every origin that leaves at
    least MIN_HISTORY days of history; index 0 is one day ahead."""
    for origin in range(MIN_HISTORY, len(values)):
        predicted = _predict(values[:origin], min(horizon, len(values) - origin))
        for h, guess in enumerate(predicted):
            yield h, values[origin + h], guess


def _residuals(values: list[float], horizon: int) -> list[list[float]]:
    """Absolute backtest errors by horizon."""
    by_horizon: list[list[float]] = [[] for _ in range(horizon)]
    for h, actual, guess in _backtest_pairs(values, horizon):
        by_horizon[h].append(abs(actual - guess))
    return by_horizon


def _quantile(errors: list[float], q: float) -> float:
    ordered = sorted(errors)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def forecast(
    series: list[tuple[date, float]], days: int, *, non_negative: bool = True
) -> list[ForecastPoint]:
    """`days` forecasts after the last date of `series` (consecutive days, oldest first).
    Too short a history (under MIN_HISTORY days) gives no forecast."""
    if days <= 0 or len(series) < MIN_HISTORY:
        return []
    values = [v for _, v in series]
    predicted = _predict(values, days)
    residuals = _residuals(values, days)
    pooled = [e for errors in residuals for e in errors]
    floor = 0.0 if non_negative else -math.inf
    points = []
    for h, value in enumerate(predicted):
        errors = residuals[h] if len(residuals[h]) >= 7 else pooled
        width = _quantile(errors, COVERAGE)
        points.append(
            ForecastPoint(
                day=series[-1][0] + timedelta(days=h + 1),
                value=round(max(value, floor), 3),
                lower=round(max(value - width, floor), 3),
                upper=round(max(value + width, floor), 3),
            )
        )
    return points


def backtest(values: list[float], horizon: int = 7) -> BacktestError:
    """The one-to-`horizon`-days-ahead error of the model over the series."""
    pairs = [(actual, abs(actual - guess)) for _, actual, guess in _backtest_pairs(values, horizon)]
    if not pairs:
        return BacktestError(mae=0.0, mape=None, points=0)
    mae = sum(error for _, error in pairs) / len(pairs)
    relative = [error / abs(actual) for actual, error in pairs if actual]
    mape = 100 * sum(relative) / len(relative) if relative else None
    return BacktestError(
        mae=round(mae, 3), mape=None if mape is None else round(mape, 2), points=len(pairs)
    )
