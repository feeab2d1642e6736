"""Locust's CSV statistics as the markdown of docs/performance.md: per route throughput,
p50/p95/p99 and errors, with the refusals the contract expects counted apart."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

# The locustfile names an expected refusal `<route> [<status>]`.
REFUSAL_MARK = " ["
P95_GOAL_MS = 200


@dataclass(frozen=True)
class Route:
    name: str
    requests: int
    errors: int
    rps: float
    p50: int
    p95: int
    p99: int

    @property
    def refusal(self) -> bool:
        return REFUSAL_MARK in self.name

    def row(self) -> str:
        return (
            f"| {self.name} | {self.requests:,} | {self.rps:,.1f} | {self.p50:,} | {self.p95:,}"
            f" | {self.p99:,} | {self.errors:,} |"
        )


@dataclass(frozen=True)
class Summary:
    routes: list[Route]
    total: Route
    failures: list[tuple[str, str, int]]
    exceptions: int

    @property
    def errors(self) -> int:
        return self.total.errors + self.exceptions

    @property
    def refusals(self) -> int:
        return sum(r.requests for r in self.routes if r.refusal)

    def over_goal(self) -> list[Route]:
        return [r for r in self.routes if not r.refusal and r.p95 > P95_GOAL_MS]


def _percentile(value: str) -> int:
    return int(value) if value not in ("", "N/A") else 0


def _reason(error: str) -> str:
    """The locustfile's reason, out of the exception's repr locust records."""
    wrapped = re.fullmatch(r"\w+\(['\"](.*)['\"]\)", error)
    return wrapped.group(1) if wrapped else error


def read(prefix: Path) -> Summary:
    """The `<prefix>_stats.csv`, `_failures.csv` and `_exceptions.csv` locust wrote."""
    routes: list[Route] = []
    total: Route | None = None
    with open(f"{prefix}_stats.csv", newline="") as stats:
        for line in csv.DictReader(stats):
            route = Route(
                name=line["Name"],
                requests=int(line["Request Count"]),
                errors=int(line["Failure Count"]),
                rps=float(line["Requests/s"]),
                p50=_percentile(line["50%"]),
                p95=_percentile(line["95%"]),
                p99=_percentile(line["99%"]),
            )
            if line["Name"] == "Aggregated":
                total = route
            else:
                routes.append(route)
    if total is None:
        raise RuntimeError(f"{prefix}_stats.csv has no Aggregated row")
    with open(f"{prefix}_failures.csv", newline="") as failures:
        failed = [
            (line["Name"], _reason(line["Error"]), int(line["Occurrences"]))
            for line in csv.DictReader(failures)
        ]
    with open(f"{prefix}_exceptions.csv", newline="") as exceptions:
        crashed = sum(int(line["Count"]) for line in csv.DictReader(exceptions))
    routes.sort(key=lambda r: (-r.requests, r.name))
    failed.sort(key=lambda f: (-f[2], f[0]))
    return Summary(routes, total, failed, crashed)


def markdown(summary: Summary) -> str:
    lines = [
        "| route | requests | requests/s | p50 (ms) | p95 (ms) | p99 (ms) | errors |",
        "|---|---|---|---|---|---|---|",
        *(r.row() for r in summary.routes),
        summary.total.row().replace("| Aggregated |", "| **all** |", 1),
        "",
        f"Errors: **{summary.errors:,}** (unexpected answers and failed checks"
        f"{f', {summary.exceptions} exceptions in the load script' if summary.exceptions else ''});"
        f" expected refusals, counted apart (rows marked `[409]`): {summary.refusals:,}.",
    ]
    if summary.failures:
        lines += ["", "| route | error | count |", "|---|---|---|"]
        lines += [f"| {name} | {error} | {count:,} |" for name, error, count in summary.failures]
    over = summary.over_goal()
    lines += [
        "",
        f"p95 ≤ {P95_GOAL_MS} ms: "
        + (
            "met by every route."
            if not over
            else "**not met** by " + ", ".join(f"{r.name} ({r.p95:,} ms)" for r in over) + "."
        ),
    ]
    return "\n".join(lines)
