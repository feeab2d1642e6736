from __future__ import annotations

import uuid
from collections import defaultdict

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slotease.config import Settings
from tests.auth.support import assert_problem
from tests.kit import apps
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


async def test_without_a_token_only_private_addresses_may_scrape(settings: Settings) -> None:
    app = build_app(settings)
    async with served(app, "93.184.215.14") as http:
        refused = await http.get("/metrics")
        assert_problem(refused, 403)
        assert "slotease_" not in refused.text
        for address in ("127.0.0.1", "10.2.3.4", "192.168.1.9", "::1", "::ffff:10.1.1.1"):
            async with apps.client(app, address) as inside:
                assert (await inside.get("/metrics")).status_code == 200, address

    # Behind a trusted proxy it is the client's address that counts, not the proxy's.
    app = build_app(settings, trust_forwarded_for=True)
    async with served(app, "10.0.0.9") as http:
        proxied = await http.get("/metrics", headers={"X-Forwarded-For": "93.184.215.14"})
        assert_problem(proxied, 403)
        inside = await http.get("/metrics", headers={"X-Forwarded-For": "10.0.0.20"})
        assert inside.status_code == 200


async def test_with_a_token_it_must_be_presented(settings: Settings) -> None:
    app = build_app(settings, metrics_token="scrape-" + "s" * 32)
    async with served(app, "127.0.0.1") as http, apps.client(app, "93.184.215.14") as outside:
        # Once a token is set, a private address alone is not enough.
        assert_problem(await http.get("/metrics"), 401)
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-it"})
        assert_problem(wrong, 401)
        right = await outside.get(
            "/metrics", headers={"Authorization": "Bearer scrape-" + "s" * 32}
        )
        assert right.status_code == 200
        assert "slotease_http_requests_total" in right.text
