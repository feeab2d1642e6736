"""A real server and Debian's Chromium driven by Playwright, for the web journeys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.conftest import REQUIRE_SERVICES
from tests.notifications.conftest import clean_jobs, mail, mailbox  # noqa: F401
from tests.realtime.conftest import ROOT, ServerFactory, start_server  # noqa: F401
from tests.web.browser import CHROMIUM, launch_chromium

FAILURE_SHOTS = ROOT / ".data" / "web-failures"
PASSWORD = "correct horse battery"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, object, None]:
    """Keeps each phase's report on the test, so fixtures can tell a failure in teardown."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def base_url(start_server: ServerFactory) -> Iterator[str]:  # noqa: F811
    with start_server() as url:
        yield url


@dataclass
class Browsing:
    browser: Browser
    base_url: str
    pages: list[Page] = field(default_factory=list)
    # Uncaught script errors and console errors (a CSP violation is one): a journey that
    # passes with any of them is still broken.
    errors: list[str] = field(default_factory=list)

    async def page(self, *, width: int = 1280, height: int = 800) -> Page:
        context: BrowserContext = await self.browser.new_context(
            base_url=self.base_url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(5000)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"{page.url}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        self.pages.append(page)
        return page


@pytest.fixture
async def browsing(base_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Browsing]:
    if CHROMIUM is None:
        reason = "Chromium is not installed; `make browser` installs it as root"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (required: SLOTEASE_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        browsing = Browsing(browser, base_url)
        try:
            yield browsing
        finally:
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                FAILURE_SHOTS.mkdir(parents=True, exist_ok=True)
                for n, page in enumerate(browsing.pages):
                    path = FAILURE_SHOTS / f"{request.node.name}-{n}.png"
                    await page.screenshot(path=str(path), full_page=True)
                    print(f"screenshot of {page.url}: {path}")
            await browser.close()


SignUp = Callable[[str], Awaitable[str]]


@pytest.fixture
def sign_up(base_url: str) -> SignUp:
    """Registers a user with a password through the API; returns their email."""

    async def register(full_name: str) -> str:
        email = f"web-{uuid.uuid4().hex[:10]}@example.com"
        async with httpx.AsyncClient(base_url=base_url) as http:
            answer = await http.post(
                "/v1/auth/signup",
                json={"email": email, "password": PASSWORD, "full_name": full_name},
            )
        assert answer.status_code == 201, answer.text
        return email

    return register


async def log_in(page: Page, email: str, target: str) -> None:
    await page.goto(f"/login?next={target}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"**{target}")
