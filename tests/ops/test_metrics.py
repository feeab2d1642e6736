from __future__ import annotations

import uuid
from collections import defaultdict

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slotease.config import Settings
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio


Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    unknown_id = uuid.uuid4()
    for _ in range(2):
        assert (await client.get(f"/v1/organizations/{unknown_id}")).status_code == 404
    assert (await client.get("/v1/nowhere")).status_code == 404
    assert (await client.delete("/health")).status_code == 405
    assert (await client.request("BREW", "/health")).status_code == 405

    response = await client.get("/metrics")
    assert str(unknown_id) not in response.text
    assert "/v1/nowhere" not in response.text
    samples = await scrape(client)

    requests = {
        (labels["method"], labels["route"], labels["status"]): value
        for labels, value in samples["slotease_http_requests_total"]
    }
    organization = next(
        route
        for (_, route, _) in requests
        if route.startswith("/v1/organizations/{") and route.endswith("}")
    )
    assert requests[("GET", organization, "404")] == 2
    assert requests[("GET", "unmatched", "404")] == 1
    assert requests[("DELETE", "/health", "405")] == 1
    assert requests[("OTHER", "/health", "405")] == 1
    assert not any(method == "BREW" for (method, _, _) in requests)
    # The first scrape is counted by the time of the second.
    assert requests[("GET", "/metrics", "200")] == 1

    counts = {
        (labels["method"], labels["route"]): value
        for labels, value in samples["slotease_http_request_duration_seconds_count"]
    }
    assert counts[("GET", organization)] == 2


def pool_gauges(samples: Samples) -> tuple[float, float, float]:
    ((_, size),) = samples["slotease_db_pool_size"]
    ((_, available),) = samples["slotease_db_pool_available"]
    ((_, waiting),) = samples["slotease_db_requests_waiting"]
    return size, available, waiting


async def test_pool_use_is_read_at_scrape_time(settings: Settings) -> None:
    app = build_app(settings, pool_min_size=2, pool_max_size=4)
    async with served(app) as http:
        size, available, waiting = pool_gauges(await scrape(http))
        assert size >= 2
        assert available >= 1
        assert waiting == 0
        async with app.state.context.db.pool.connection():
            held_size, held_available, _ = pool_gauges(await scrape(http))
        assert held_size >= size
        assert held_available == available - 1 + (held_size - size)


async def test_each_app_counts_only_its_own_requests(client: httpx.AsyncClient) -> None:
    # Another test's app in this process must not leak counts into this one.
    samples = await scrape(client)
    assert samples["slotease_http_requests_total"] == []


async def test_open_websockets_are_a_gauge(settings: Settings) -> None:
    app = build_app(settings)
    hub = app.state.context.realtime.hub
    async with served(app) as http:
        assert (await scrape(http))["slotease_websocket_connections"] == [({}, 0.0)]
        first, second = hub.connect(), hub.connect()
        assert (await scrape(http))["slotease_websocket_connections"] == [({}, 2.0)]
        hub.disconnect(first)
        assert (await scrape(http))["slotease_websocket_connections"] == [({}, 1.0)]
        hub.disconnect(second)
