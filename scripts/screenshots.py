"""Pictures of every page for the README (docs/screenshots/), taken in Debian's Chromium from
a server with the demo data: `make run` in one terminal, then `make screenshots`.

    python -m scripts.screenshots [--base-url http://127.0.0.1:8000] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright
from tests.web.browser import launch_chromium

from slotease.demo import CUSTOMER_COUNT, DEMO_DOMAIN, DEMO_PASSWORD

CUSTOMER = f"customer07@{DEMO_DOMAIN}"


async def log_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/")


async def take_ticket(http: httpx.AsyncClient, queue_id: str) -> tuple[str, str]:
    """A ticket in the queue for the first demo customer not already in its line (the demo
    seeds today's line with some of them): their email and the ticket's id."""
    for n in range(1, CUSTOMER_COUNT + 1):
        email = f"customer{n:02d}@{DEMO_DOMAIN}"
        grant = {"grant_type": "password", "email": email, "password": DEMO_PASSWORD}
        token = (await http.post("/v1/auth/token", json=grant)).raise_for_status().json()
        answer = await http.post(
            f"/v1/queues/{queue_id}/tickets",
            json={},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        if answer.status_code != 409:
            return email, answer.raise_for_status().json()["id"]
    raise RuntimeError("Every demo customer already holds a ticket in this queue.")


async def shoot(page: Page, path: str, out: Path, name: str, ready: str) -> None:
    await page.goto(path)
    await page.locator(ready).first.wait_for()
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"{name}: {path}")


async def main(base_url: str, out: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        org: dict[str, Any] = (
            (await http.get("/v1/organizations")).raise_for_status().json()["items"][0]
        )
        services = (await http.get(f"/v1/organizations/{org['id']}/services")).json()["items"]
        queues = (await http.get(f"/v1/organizations/{org['id']}/queues")).json()["items"]
    admin = f"admin@{org['slug']}.{DEMO_DOMAIN}"
    org_path, queue_id = f"/o/{org['id']}", queues[-1]["id"]
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        phone = await browser.new_context(
            base_url=base_url, viewport={"width": 390, "height": 844}, device_scale_factor=2
        )
        desk = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
        page = await phone.new_page()
        await shoot(page, "/signup", out, "signup", "form")
        await shoot(page, "/login", out, "login", "form")
        await shoot(page, "/", out, "home", "#results li")
        await shoot(page, org_path, out, "organization", "#services li")
        await log_in(page, CUSTOMER)
        await shoot(page, f"{org_path}/s/{services[0]['id']}", out, "slots", "button.slot")
        await shoot(page, "/me/appointments", out, "appointments", "li.appointment, #empty")
        board = await desk.new_page()
        await shoot(board, f"/board/{queue_id}", out, "board", "#live[data-state='up']")
        staff = await desk.new_page()
        await log_in(staff, admin)
        await shoot(staff, f"/staff/{org['id']}", out, "staff", "#live[data-state='up']")
        await shoot(staff, f"/admin/{org['id']}", out, "admin", "svg.chart-svg")
        await shoot(staff, f"/admin/{org['id']}/services", out, "admin-services", "#services tr")
        await shoot(staff, f"/admin/{org['id']}/members", out, "admin-members", "tr.member")
        await shoot(staff, f"/admin/{org['id']}/api-keys", out, "admin-api-keys", "#key-form")
        await shoot(staff, f"/admin/{org['id']}/webhooks", out, "admin-webhooks", "form")
        await shoot(page, f"/q/{queue_id}/join", out, "join", "#join")
        async with httpx.AsyncClient(base_url=base_url) as http:
            holder, ticket_id = await take_ticket(http, queue_id)
        await log_in(page, holder)
        await shoot(page, f"/t/{ticket_id}", out, "ticket", "#live[data-state='up']")
        await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments.base_url, arguments.out))
