"""The web session: forms and the page token check CSRF, cookies are scoped, pages carry a
Content-Security-Policy, and logout ends the session's refresh family."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from slotease.config import Settings
from tests.factories import Owner
from tests.kit import apps
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

PASSWORD = "a good password"


async def csrf_of(client: httpx.AsyncClient, path: str = "/login") -> str:
    page = await client.get(path)
    assert page.status_code == 200
    field = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert field is not None
    assert client.cookies["csrf"] == field.group(1)
    return field.group(1)


async def sign_up(client: httpx.AsyncClient, email: str) -> httpx.Response:
    csrf = await csrf_of(client, "/signup")
    return await client.post(
        "/signup",
        data={
            "csrf": csrf,
            "email": email,
            "full_name": "Web User",
            "password": PASSWORD,
            "next": "/me/appointments",
        },
    )


async def test_pages_carry_the_content_security_policy(client: httpx.AsyncClient) -> None:
    for path in ("/", "/login", "/signup", "/board/00000000-0000-0000-0000-000000000001"):
        page = await client.get(path)
        assert page.status_code == 200, path
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "<script>" not in page.text
        assert ' style="' not in page.text


async def test_signed_in_pages_send_strangers_to_the_login(client: httpx.AsyncClient) -> None:
    page = await client.get("/me/appointments")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/me/appointments"


async def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    await csrf_of(client, "/signup")
    body = {"email": "forged@example.com", "full_name": "Forged", "password": PASSWORD}
    assert (await client.post("/signup", data=body)).status_code == 403
    assert (await client.post("/signup", data={**body, "csrf": "x" * 43})).status_code == 403
    assert (
        owner.execute("select 1 from auth.users where email = 'forged@example.com'").fetchone()
        is None
    )


async def test_sign_up_sets_the_session_and_the_page_token_needs_csrf(
    client: httpx.AsyncClient,
) -> None:
    answer = await sign_up(client, "web-session@example.com")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/me/appointments"
    cookie = next(
        header
        for header in answer.headers.get_list("set-cookie")
        if header.startswith("slotease_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure

    assert (await client.post("/session/token")).status_code == 403
    wrong = await client.post("/session/token", headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403

    csrf = client.cookies["csrf"]
    token = await client.post("/session/token", headers={"X-CSRF-Token": csrf})
    assert token.status_code == 200
    access = token.json()["access_token"]
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {access}"})
    assert me.json()["email"] == "web-session@example.com"
    # Asking again (a second tab) works too: the session is not spent by use.
    again = await client.post("/session/token", headers={"X-CSRF-Token": csrf})
    assert again.status_code == 200


async def test_a_taken_email_and_a_bad_password_are_shown_on_the_form(
    client: httpx.AsyncClient,
) -> None:
    assert (await sign_up(client, "taken@example.com")).status_code == 303
    client.cookies.delete("slotease_session")
    taken = await sign_up(client, "taken@example.com")
    assert taken.status_code == 409
    assert "already exists" in taken.text

    csrf = await csrf_of(client)
    bad = await client.post(
        "/login", data={"csrf": csrf, "email": "taken@example.com", "password": "wrong one"}
    )
    assert bad.status_code == 401
    assert "incorrect" in bad.text
    assert "slotease_session" not in client.cookies


async def test_login_only_redirects_inside_the_site(client: httpx.AsyncClient) -> None:
    assert (await sign_up(client, "redirect@example.com")).status_code == 303
    csrf = await csrf_of(client)
    answer = await client.post(
        "/login",
        data={
            "csrf": csrf,
            "email": "redirect@example.com",
            "password": PASSWORD,
            "next": "//evil.example/",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


async def test_logout_revokes_the_session(client: httpx.AsyncClient) -> None:
    assert (await sign_up(client, "leaving@example.com")).status_code == 303
    session = client.cookies["slotease_session"]
    csrf = client.cookies["csrf"]
    assert (await client.post("/logout", data={})).status_code == 403
    answer = await client.post("/logout", data={"csrf": csrf})
    assert answer.status_code == 303
    assert "slotease_session" not in client.cookies

    # The old cookie, replayed, no longer buys a token.
    client.cookies.set("slotease_session", session)
    client.cookies.set("csrf", csrf)
    refused = await client.post("/session/token", headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 401


async def test_static_files_stay_inside_their_folder(client: httpx.AsyncClient) -> None:
    script = await client.get("/static/js/http.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert (await client.get("/static/../routes.py")).status_code == 404
    assert (await client.get("/static/%2e%2e/routes.py")).status_code == 404


def set_cookies(answer: httpx.Response) -> dict[str, str]:
    """Each cookie the answer sets, by name, with its attributes."""
    return {header.split("=", 1)[0]: header for header in answer.headers.get_list("set-cookie")}


async def signed_up_over_http(http: httpx.AsyncClient, email: str) -> httpx.Response:
    """Sign-up over plain http, as behind a TLS-terminating load balancer: a Secure cookie is
    not sent back there by a client, so the form's CSRF cookie goes in by hand."""
    page = await http.get("/signup")
    field = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert field is not None
    return await http.post(
        "/signup",
        data={
            "csrf": field.group(1),
            "email": email,
            "full_name": "Web User",
            "password": PASSWORD,
        },
        headers={"Cookie": f"csrf={field.group(1)}"},
    )


async def test_cookies_are_secure_as_configured_whatever_the_scheme(settings: Settings) -> None:
    cases: list[tuple[dict[str, object], bool]] = [
        ({"cookie_secure": True}, True),
        ({"env": "production"}, True),
        ({"env": "production", "cookie_secure": False}, False),
        ({}, False),
    ]
    for overrides, secure in cases:
        app = build_app(settings, **overrides)
        async with served(app) as http, apps.client(app) as stranger:
            email = f"secure-{uuid.uuid4().hex[:8]}@example.com"
            answer = await signed_up_over_http(http, email)
            assert answer.status_code == 303
            assert ("Secure" in set_cookies(answer)["slotease_session"]) is secure, overrides
            csrf = set_cookies(await stranger.get("/login"))["csrf"]
            assert ("Secure" in csrf) is secure, overrides


async def test_a_throttled_login_is_shown_on_the_form(settings: Settings) -> None:
    app = build_app(settings)
    async with served(app) as http:
        email = f"throttled-{uuid.uuid4().hex[:8]}@example.com"
        assert (await sign_up(http, email)).status_code == 303
        http.cookies.delete("slotease_session")
        csrf = await csrf_of(http)
        for n in range(5):
            wrong = await http.post(
                "/login", data={"csrf": csrf, "email": email, "password": f"guess {n}"}
            )
            assert wrong.status_code == 401
        locked = await http.post(
            "/login", data={"csrf": csrf, "email": email, "password": PASSWORD}
        )
        assert locked.status_code == 429
        assert locked.headers["content-type"].startswith("text/html")
        assert 0 < int(locked.headers["Retry-After"]) <= 60
        assert "Too many failed sign-ins" in locked.text
        assert email in locked.text
        assert "slotease_session" not in http.cookies
