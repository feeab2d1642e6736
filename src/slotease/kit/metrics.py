"""Prometheus metrics of one app instance, in a registry of its own so that several apps in one
process (tests, workers started in-process) never share or collide on counters."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import Scope

from slotease.kit.problems import Forbidden, Problem, Unauthorized

UNMATCHED = "unmatched"
# Clients may send any method name; only these get a series of their own.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Pool figures are read when scraped, so they are never stale.
_POOL_GAUGES = {
    "pool_size": "Connections currently held by the pool, busy or idle.",
    "pool_available": "Idle connections ready to be handed out.",
    "requests_waiting": "Requests queued for a connection.",
}


class PoolCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        for name, documentation in _POOL_GAUGES.items():
            yield GaugeMetricFamily(f"slotease_db_{name}", documentation, value=stats.get(name, 0))


class Metrics:
    def __init__(self, pool_stats: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "slotease_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "slotease_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "slotease_rate_limited",
            "Requests refused with 429, by kind of caller.",
            ["bucket"],
            registry=self.registry,
        )
        self.rate_limit_errors = Counter(
            "slotease_rate_limit_storage_errors",
            "Requests let through unchecked because the rate-limit storage failed.",
            registry=self.registry,
        )
        self.registry.register(PoolCollector(pool_stats))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def scrape_refusal(token: str | None, authorization: str | None, address: str) -> Problem | None:
    """Why a caller may not read /metrics, or None. With SLOTEASE_METRICS_TOKEN set it must be
    presented as a Bearer token; without, the scraper must call from a loopback or private
    address, as a sidecar or an in-cluster Prometheus does."""
    if token:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return None
        return Unauthorized("The metrics token is missing or wrong.")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return Forbidden("Metrics are served only to private addresses.")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_private:
        return None
    return Forbidden("Metrics are served only to private addresses.")


def _served_templates(app: Any, served: object) -> dict[int, str]:
    """Template by route object, built once per app (and again if a route was added since):
    walking every route on every request cost more than the rest of the metrics."""
    templates: dict[int, str] | None = getattr(app.state, "route_templates", None)
    if templates is None or id(served) not in templates:
        templates = {
            id(context.original_route): context.path or UNMATCHED
            for context in iter_route_contexts(app.router.routes)
        }
        app.state.route_templates = templates
    return templates


def route_template(scope: Scope) -> str:
    """The full path template of the route that served (or would serve) the request.

    Labels use the template, never the raw path, so that ids in URLs cannot grow the number of
    series without bound. The route in the scope is the one declared in its APIRouter, without
    the include prefix, so the full template comes from FastAPI's view of the included routes.
    """
    app = scope["app"]
    served = scope.get("route")
    if served is not None:
        template = _served_templates(app, served).get(id(served))
        if template is not None:
            return template
    # Not routed yet, or routed inside a mounted app: match the way the router would.
    partial: str | None = None
    for context in iter_route_contexts(app.router.routes):
        match, _ = context.matches(scope)
        if match is Match.FULL:
            return context.path or UNMATCHED
        if match is Match.PARTIAL and partial is None:
            partial = context.path
    return partial or UNMATCHED
