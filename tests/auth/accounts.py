"""Helpers of the account tests: the links mailed to an address, and MFA codes."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

from slotease.config import Settings
from tests.auth.support import PASSWORD
from tests.notifications.support import Mailbox, body_of, run_jobs, worker_app

PUBLIC_URL = "https://slots.example.org"


async def mailed_link(settings: Settings, mailbox: Mailbox, email: str, path: str) -> str:
    """Run the worker, and answer the one link to `path` under SLOTEASE_PUBLIC_URL mailed to
    `email`."""
    async with worker_app(settings) as (app, _):
        await run_jobs(app)
    base = settings.public_url.rstrip("/")
    pattern = re.compile(rf"{re.escape(base)}/{path}\?token=\S+")
    links = [
        link.group(0)
        for recipients, message in mailbox.messages
        if email in recipients and (link := pattern.search(body_of(message)))
    ]
    assert len(links) == 1, f"{len(links)} links to {path} mailed to {email}"
    return links[0]


async def mailed_token(settings: Settings, mailbox: Mailbox, email: str, path: str) -> str:
    link = await mailed_link(settings, mailbox, email, path)
    return parse_qs(urlsplit(link).query)["token"][0]


def audit_events(owner: Any, user_id: Any) -> list[tuple[str, dict[str, Any]]]:
    rows = owner.execute(
        "select new_row ->> 'event', new_row from public.audit_log"
        " where table_name = 'auth_events' and row_id = %s order by id",
        (str(user_id),),
    ).fetchall()
    return [(event, row) for event, row in rows]


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


async def password_grant(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"grant_type": "password", "email": email, "password": password}
    )


async def enable_mfa(client: httpx.AsyncClient, session: dict[str, Any]) -> dict[str, Any]:
    """Enroll and confirm; answers the enrollment (secret and recovery codes). The confirming
    code is of the previous time step, so that a test's own code of this step stays unused."""
    enrolled = await client.post("/v1/me/mfa", headers=bearer(session))
    assert enrolled.status_code == 201, enrolled.text
    enrollment: dict[str, Any] = enrolled.json()
    code = pyotp.TOTP(enrollment["secret"]).at(time.time() - 30)
    confirmed = await client.post(
        "/v1/me/mfa/confirm", json={"code": code}, headers=bearer(session)
    )
    assert confirmed.status_code == 204, confirmed.text
    return enrollment


def current_code(secret: str) -> str:
    return pyotp.TOTP(secret).now()
