"""Backtest of the trends forecast on the demo data: MAE and MAPE of 1-7 day forecasts for
each demo organization's daily appointments and completed appointments.

    .venv/bin/python -m bench.forecast_backtest
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from bench.common import fresh_database
from slotease.analytics.forecast import backtest
from slotease.config import Settings
from slotease.demo import seed_demo

METRICS = {"appointments": "sum(total)", "completed": "sum(completed)"}


def main() -> None:
    owner = fresh_database("slotease_bench_forecast")
    seed_demo(Settings(database_url=owner, jwt_secret="x" * 40, env="test"))
    print("| organization | metric | days | MAE | MAPE | points |")
    print("|---|---|---|---|---|---|")
    with psycopg.connect(owner, autocommit=True) as conn:
        organizations = conn.execute(
            "select id, name, (now() at time zone timezone)::date"
            " from public.organizations order by name"
        ).fetchall()
        for org, name, today in organizations:
            for metric, total in METRICS.items():
                rows = dict(
                    conn.execute(
                        f"select day, {total} from public.analytics_daily_service"
                        " where organization_id = %s and day < %s group by day",
                        (org, today),
                    ).fetchall()
                )
                if not rows:
                    continue
                first = min(rows)
                days = [first + timedelta(days=i) for i in range((today - first).days)]
                errors = backtest([float(rows.get(day, 0)) for day in days], horizon=7)
                print(
                    f"| {name} | {metric} | {len(days)} | {errors.mae} | {errors.mape} % |"
                    f" {errors.points} |"
                )


if __name__ == "__main__":
    main()
