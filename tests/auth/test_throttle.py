"""Failed sign-ins are throttled per account and per address, before the password is checked,
in this process or across processes through Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
import redis

from slotease.auth.throttle import KEY_PREFIX, retry_after
from slotease.config import Settings
from tests.auth.support import PASSWORD, assert_problem, new_email
from tests.kit.apps import build_app, client, served

pytestmark = pytest.mark.anyio


def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The throttle's notion of now, moved by the test; the rest of the process keeps real time."""
    clock = [time.time()]
    monkeypatch.setattr("slotease.auth.throttle.time", SimpleNamespace(time=lambda: clock[0]))
    return clock


async def signed_up(http: httpx.AsyncClient) -> str:
    email = new_email()
    body = {"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"}
    assert (await http.post("/v1/auth/signup", json=body)).status_code == 201
    return email


async def password_grant(
    http: httpx.AsyncClient, email: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        "/v1/auth/token",
        json={"grant_type": "password", "email": email, "password": password},
        headers=headers,
    )


async def fail(http: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        guess = f"guess {uuid.uuid4().hex[:6]}"
        assert (await password_grant(http, email, guess)).status_code == 401


async def test_random_api_keys_do_not_help_guessing_a_password(settings: Settings) -> None:
    # The attack of the security review: a fresh invented API key on every guess.
    app = build_app(settings)
    async with served(app) as http:
        email = await signed_up(http)
        answers = [
            await password_grant(
                http, email, f"guess {n}", headers={"X-API-Key": "sk_" + uuid.uuid4().hex}
            )
            for n in range(30)
        ]
        statuses = [r.status_code for r in answers]
        assert statuses[:5] == [401] * 5
        assert set(statuses[5:]) == {429}

        locked = await password_grant(http, email, PASSWORD)
        body = assert_problem(locked, 429)
        assert body["type"].endswith("/rate-limited")
        assert 0 < int(locked.headers["Retry-After"]) <= 60


async def test_the_lock_doubles_success_clears_it_and_old_failures_expire(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = frozen_clock(monkeypatch)
    app = build_app(settings)
    async with served(app) as http:
        email = await signed_up(http)
        await fail(http, email, 5)
        first = await password_grant(http, email, PASSWORD)
        assert first.status_code == 429
        assert int(first.headers["Retry-After"]) == 60

        # After the lock, one more failure locks for twice as long.
        clock[0] += 61
        await fail(http, email, 1)
        second = await password_grant(http, email, "guess 6")
        assert second.status_code == 429
        assert int(second.headers["Retry-After"]) == 120

        clock[0] += 121
        assert (await password_grant(http, email, PASSWORD)).status_code == 200
        # The success cleared the account: five new failures are needed to lock it again.
        await fail(http, email, 4)
        assert (await password_grant(http, email, PASSWORD)).status_code == 200

        # Only the window's failures count: four old ones and five new ones lock on the fifth.
        await fail(http, email, 4)
        clock[0] += 15 * 60 + 1
        await fail(http, email, 5)
        assert (await password_grant(http, email, PASSWORD)).status_code == 429


async def test_one_attacked_account_does_not_lock_out_its_neighbours(
    settings: Settings,
) -> None:
    app = build_app(settings, login_failures_per_address=8)
    async with served(app) as http, client(app, "10.1.2.3") as elsewhere:
        victim, colleague = await signed_up(http), await signed_up(http)
        # Five failures lock the victim; the refused attempts after that are not failures.
        for n in range(7):
            await password_grant(http, victim, f"guess {n}")
        # The same address still signs other accounts in...
        assert (await password_grant(http, colleague, PASSWORD)).status_code == 200
        # ...until it has failed eight times, on any accounts.
        for _ in range(3):
            await fail(http, new_email(), 1)
        refused = await password_grant(http, colleague, PASSWORD)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        # Another address reaches the colleague, but not the locked account.
        assert (await password_grant(elsewhere, colleague, PASSWORD)).status_code == 200
        assert (await password_grant(elsewhere, victim, PASSWORD)).status_code == 429


async def test_unknown_emails_are_throttled_like_accounts(settings: Settings) -> None:
    app = build_app(settings)
    async with served(app) as http:
        email = new_email()
        answers = [await password_grant(http, email.upper(), f"guess {n}") for n in range(6)]
        assert [r.status_code for r in answers] == [401] * 5 + [429]


async def test_concurrent_guesses_cannot_slip_past_the_count(settings: Settings) -> None:
    app = build_app(settings)
    async with served(app) as http:
        email = await signed_up(http)
        answers = await asyncio.gather(
            *(password_grant(http, email, f"guess {n}") for n in range(12))
        )
        assert sorted(r.status_code for r in answers) == [401] * 5 + [429] * 7


def test_the_lock_grows_by_doubling_up_to_the_window() -> None:
    now = 1_000_000.0
    failures = [(str(n), now) for n in range(12)]
    assert retry_after(failures[:4], 5, now) is None
    assert [retry_after(failures[:n], 5, now) for n in range(5, 12)] == [
        60,
        120,
        240,
        480,
        900,
        900,
        900,
    ]
    assert retry_after(failures[:5], 5, now + 60) is None


@pytest.fixture
def redis_server(redis_url: str) -> Iterator[redis.Redis]:
    server = redis.Redis.from_url(redis_url)
    yield server
    for key in server.scan_iter(f"{KEY_PREFIX}:*"):
        server.delete(key)
    server.close()


async def test_redis_holds_the_count_across_processes(
    settings: Settings, redis_url: str, redis_server: redis.Redis
) -> None:
    first = build_app(settings, redis_url=redis_url)
    second = build_app(settings, redis_url=redis_url)
    async with served(first) as a, served(second) as b:
        email = await signed_up(a)
        for n in range(5):
            await fail(a if n % 2 else b, email, 1)
        assert (await password_grant(b, email, PASSWORD)).status_code == 429
        assert (await password_grant(a, email, PASSWORD)).status_code == 429
    assert list(redis_server.scan_iter(f"{KEY_PREFIX}:account:*"))
