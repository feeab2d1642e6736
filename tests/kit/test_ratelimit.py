from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from slotease.config import Settings
from slotease.kit import ratelimit
from slotease.kit.ratelimit import KEY_PREFIX, MovingWindows
from tests.auth.support import issue_api_key
from tests.factories import Owner, make_organization, make_user
from tests.kit.apps import build_app, client, served

pytestmark = pytest.mark.anyio

WHOAMI = "/v1/test/whoami"


def quota(response: httpx.Response) -> tuple[int, int, int]:
    headers = response.headers
    return (
        int(headers["RateLimit-Limit"]),
        int(headers["RateLimit-Remaining"]),
        int(headers["RateLimit-Reset"]),
    )


async def test_anonymous_callers_are_limited_by_address(settings: Settings) -> None:
    app = build_app(settings, rate_limit_anon="3/minute")
    async with served(app) as http, client(app, "10.9.8.7") as neighbour:
        answers = [await http.get(WHOAMI) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert [quota(r)[:2] for r in answers] == [(3, 2), (3, 1), (3, 0)]
        assert all(0 < quota(r)[2] <= 60 for r in answers)

        refused = await http.get(WHOAMI)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429
        assert refused.json()["type"].endswith("/rate-limited")
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        assert quota(refused)[:2] == (3, 0)

        # Another address has its own allowance.
        other = await neighbour.get(WHOAMI)
        assert other.status_code == 200
        assert quota(other)[1] == 2


async def test_forwarded_for_is_ignored_unless_trusted(settings: Settings) -> None:
    app = build_app(settings, rate_limit_anon="1/minute")
    async with served(app) as http:
        assert (await http.get(WHOAMI, headers={"X-Forwarded-For": "1.1.1.1"})).status_code == 200
        # A client cannot pick a fresh bucket by claiming another address.
        spoofed = await http.get(WHOAMI, headers={"X-Forwarded-For": "2.2.2.2"})
        assert spoofed.status_code == 429


async def test_behind_a_proxy_the_client_is_the_hop_it_appended(settings: Settings) -> None:
    # The load balancer (the peer, 10.0.0.9) appends the address it received from; whatever
    # the client wrote itself stands to the left and must not choose the bucket.
    app = build_app(settings, rate_limit_anon="1/minute", trust_forwarded_for=True)
    async with served(app, "10.0.0.9") as http:
        first = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}
        assert (await http.get(WHOAMI, headers=first)).status_code == 200
        spoofed = {"X-Forwarded-For": "198.51.100.2, 203.0.113.5"}
        assert (await http.get(WHOAMI, headers=spoofed)).status_code == 429
        other_client = {"X-Forwarded-For": "198.51.100.1, 203.0.113.6"}
        assert (await http.get(WHOAMI, headers=other_client)).status_code == 200

    # Two proxies (a CDN, then the load balancer): the client is second from the right.
    app = build_app(
        settings, rate_limit_anon="1/minute", trust_forwarded_for=True, trusted_proxy_count=2
    )
    async with served(app, "10.0.0.9") as http:
        chain = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5, 192.0.2.77"}
        assert (await http.get(WHOAMI, headers=chain)).status_code == 200
        same_client = {"X-Forwarded-For": "203.0.113.5, 192.0.2.78"}
        assert (await http.get(WHOAMI, headers=same_client)).status_code == 429
        # Too few hops: the request bypassed the proxies, so it is counted by its peer.
        assert (await http.get(WHOAMI, headers={"X-Forwarded-For": "1.2.3.4"})).status_code == 200
        assert (await http.get(WHOAMI, headers={"X-Forwarded-For": "5.6.7.8"})).status_code == 429


async def test_signed_in_users_have_their_own_bucket(settings: Settings, owner: Owner) -> None:
    alice, bob = make_user(owner), make_user(owner)
    app = build_app(settings, rate_limit_user="2/minute", rate_limit_anon="5/minute")
    async with served(app) as http:
        first = await http.get("/v1/me", headers=alice.headers)
        assert first.status_code == 200
        assert quota(first)[:2] == (2, 1)
        second = await http.get(WHOAMI, headers=alice.headers)
        assert second.json() == {"kind": "user"}
        assert quota(second)[:2] == (2, 0)
        assert (await http.get("/v1/me", headers=alice.headers)).status_code == 429

        assert (await http.get("/v1/me", headers=bob.headers)).status_code == 200
        # The same address, anonymous, is counted under its own limit.
        anonymous = await http.get(WHOAMI)
        assert anonymous.status_code == 200
        assert quota(anonymous)[:2] == (5, 4)


async def test_unknown_api_keys_count_against_the_address(settings: Settings) -> None:
    app = build_app(settings, rate_limit_api_key="100/minute", rate_limit_anon="3/minute")
    async with served(app) as http:
        # A new invented key per request: each is refused, and none opens a bucket of its own.
        answers = [
            await http.get("/v1/me", headers={"X-API-Key": "sk_" + uuid.uuid4().hex})
            for _ in range(3)
        ]
        assert [r.status_code for r in answers] == [401, 401, 401]
        assert [quota(r)[:2] for r in answers] == [(3, 2), (3, 1), (3, 0)]
        refused = await http.get(WHOAMI, headers={"apikey": "sk_" + uuid.uuid4().hex})
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers


async def test_a_live_api_key_gets_its_own_bucket_once_accepted(
    settings: Settings, owner: Owner
) -> None:
    admin = make_user(owner)
    org = make_organization(owner, admin)
    app = build_app(settings, rate_limit_api_key="5/minute", rate_limit_anon="50/minute")
    async with served(app) as http:
        key = {"X-API-Key": (await issue_api_key(http, org, admin))["key"]}
        # Unproven until the database has accepted it: counted with the address.
        first = await http.get(f"/v1/organizations/{org}/api-keys", headers=key)
        assert first.status_code == 200
        assert quota(first)[0] == 50
        second = await http.get(f"/v1/organizations/{org}/api-keys", headers=key)
        assert quota(second)[:2] == (5, 4)

        keys = await http.get(f"/v1/organizations/{org}/api-keys", headers=admin.headers)
        key_id = keys.json()["items"][0]["id"]
        deleted = await http.delete(
            f"/v1/organizations/{org}/api-keys/{key_id}", headers=admin.headers
        )
        assert deleted.status_code == 204
        listing = await http.get(f"/v1/organizations/{org}/api-keys", headers=key)
        assert listing.status_code == 401
        # Refused once, the key is back with the address's requests.
        assert quota(await http.get(WHOAMI, headers=key))[0] == 50


async def test_sign_in_routes_are_limited_per_address(settings: Settings) -> None:
    app = build_app(settings, rate_limit_auth="3/minute", rate_limit_anon="100/minute")
    async with served(app) as http, client(app, "10.9.8.7") as neighbour:
        grant = {"grant_type": "password", "email": "nobody@example.com", "password": "guess"}
        first = await http.post("/v1/auth/token", json=grant)
        assert first.status_code == 401
        assert quota(first)[:2] == (3, 2)
        signup = await http.post("/v1/auth/signup", json={"email": "not an address"})
        assert signup.status_code == 422
        login = await http.post("/login", data={"email": "a@example.com", "password": "guess"})
        assert login.status_code == 403
        assert quota(login)[:2] == (3, 0)

        refused = await http.post("/v1/auth/token", json=grant)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        assert (await http.post("/signup", data={})).status_code == 429
        # Other routes and other addresses keep their own allowance.
        assert quota(await http.get(WHOAMI))[:2] == (100, 94)
        assert (await neighbour.post("/v1/auth/token", json=grant)).status_code == 401
        metrics = (await http.get("/metrics")).text
        assert 'slotease_rate_limited_total{bucket="auth"} 2.0' in metrics


async def test_bad_credentials_count_against_the_address(settings: Settings) -> None:
    app = build_app(settings, rate_limit_anon="2/minute")
    async with served(app) as http:
        assert (await http.get(WHOAMI)).json() == {"kind": "anon"}
        bad = await http.get("/v1/me", headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401
        assert quota(bad)[:2] == (2, 0)
        # Garbage credentials do not open a fresh bucket.
        assert (await http.get(WHOAMI, headers={"apikey": "nope"})).status_code == 429


async def test_probes_and_metrics_are_not_limited(settings: Settings) -> None:
    app = build_app(settings, rate_limit_anon="1/minute")
    async with served(app) as http:
        await http.get(WHOAMI)
        assert (await http.get(WHOAMI)).status_code == 429
        for path in ("/health", "/ready", "/metrics", "/static/app.css"):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert "RateLimit-Limit" not in response.headers
        metrics = (await http.get("/metrics")).text
        assert 'slotease_rate_limited_total{bucket="anon"} 1.0' in metrics
        # Refused before routing, still counted under its route template.
        assert (
            'slotease_http_requests_total{method="GET",route="/v1/test/whoami",status="429"} 1.0'
            in metrics
        )


@pytest.fixture
def redis_keys(redis_url: str) -> Iterator[list[str]]:
    """Buckets (substrings of keys) this test used; their keys are deleted afterwards."""
    buckets: list[str] = []
    yield buckets
    server = redis.Redis.from_url(redis_url)
    for bucket in buckets:
        for key in server.scan_iter(f"{KEY_PREFIX}:*{bucket}*"):
            server.delete(key)
    server.close()


async def test_redis_shares_a_limit_between_processes(
    settings: Settings, owner: Owner, redis_url: str, redis_keys: list[str]
) -> None:
    user = make_user(owner)
    redis_keys.append(str(user.id))
    first = build_app(settings, redis_url=redis_url, rate_limit_user="3/minute")
    second = build_app(settings, redis_url=redis_url, rate_limit_user="3/minute")
    async with served(first) as a, served(second) as b:
        assert quota(await a.get(WHOAMI, headers=user.headers))[1] == 2
        assert quota(await b.get(WHOAMI, headers=user.headers))[1] == 1
        assert quota(await a.get(WHOAMI, headers=user.headers))[1] == 0
        refused = await b.get(WHOAMI, headers=user.headers)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 60

    server = redis.Redis.from_url(redis_url)
    assert list(server.scan_iter(f"{KEY_PREFIX}:*{user.id}*"))
    server.close()


async def test_redis_outage_lets_requests_through(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every storage call fails at once.
    app = build_app(settings, redis_url="redis://127.0.0.1:1/0", rate_limit_anon="1/minute")
    with caplog.at_level(logging.WARNING, logger="slotease.kit.ratelimit"):
        async with served(app) as http:
            answers = [await http.get(WHOAMI) for _ in range(3)]
            assert [r.status_code for r in answers] == [200, 200, 200]
            assert all("RateLimit-Limit" not in r.headers for r in answers)
            metrics = (await http.get("/metrics")).text
    assert "slotease_rate_limit_storage_errors_total 3.0" in metrics
    warnings = [r for r in caplog.records if r.name == "slotease.kit.ratelimit"]
    # One warning for the outage, not one per request.
    assert len(warnings) == 1


def test_the_in_process_window_moves_and_forgets_idle_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    windows = MovingWindows()
    assert windows.hit("a", 2, 60) == (True, 1060.0, 1)
    now[0] = 1030.0
    assert windows.hit("a", 2, 60) == (True, 1060.0, 0)
    # Full: refused, and counted nowhere, until the oldest hit leaves the window.
    assert windows.hit("a", 2, 60) == (False, 1060.0, 0)
    now[0] = 1060.0
    assert windows.hit("a", 2, 60) == (True, 1090.0, 0)
    # A key whose hits all left their window is dropped by the next sweep.
    windows.hit("b", 5, 10)
    assert len(windows) == 2
    now[0] = 1200.0
    windows.hit("c", 5, 10)
    assert len(windows) == 1
