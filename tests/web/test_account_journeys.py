"""The account journeys in Chromium against a real server: recovery and verification by the
links the worker mails (over real SMTP), and sign-in with a second factor."""

from __future__ import annotations

import re
import time
import uuid

import pyotp
import pytest
from playwright.async_api import Page, expect

from slotease.config import Settings
from tests.auth.accounts import mailed_link
from tests.factories import Owner
from tests.notifications.support import Mailbox, with_smtp
from tests.web.conftest import PASSWORD, Browsing, SignUp, log_in

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("clean_jobs")]

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int], base_url: str) -> Settings:
    """The worker's: it mails through the local SMTP server, with links to the live server."""
    return with_smtp(settings, mail[1]).model_copy(update={"public_url": base_url})


async def test_a_forgotten_password_is_reset_by_the_mailed_link(
    browsing: Browsing, sign_up: SignUp, settings: Settings, mailbox: Mailbox
) -> None:
    email = await sign_up("Rita Reset")
    page = await browsing.page(width=375, height=812)

    await page.goto("/login?next=/me/appointments")
    await page.get_by_role("link", name="Forgotten your password?").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page.get_by_role("status").first).to_contain_text("a link to choose a new")

    await page.goto(await mailed_link(settings, mailbox, email, "reset-password"))
    await page.get_by_role("textbox", name=re.compile("^New password")).fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("status").first).to_contain_text("Your password is changed")

    await page.goto("/login?next=/me/appointments")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/me/appointments")
    assert browsing.errors == []


async def test_a_new_account_confirms_its_address_by_the_mailed_link(
    browsing: Browsing, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    page = await browsing.page()
    email = f"vera-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/signup?next=/account")
    await page.get_by_label("Full name").fill("Vera Verify")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await page.wait_for_url("**/account")
    await expect(page.locator(".badge")).to_have_text("Not verified")

    await page.goto(await mailed_link(settings, mailbox, email, "verify-email"))
    await page.get_by_role("button", name="Confirm my address").click()
    await expect(page.get_by_role("status").first).to_contain_text("is confirmed")

    await page.goto("/account")
    await expect(page.locator(".badge")).to_have_text("Verified")
    confirmed = owner.execute(
        "select email_confirmed_at is not null from auth.users where email = %s", (email,)
    ).fetchone()
    assert confirmed == (True,)
    assert browsing.errors == []


async def enter_code(page: Page, code: str, button: str) -> None:
    await page.get_by_label(re.compile("^Code")).fill(code)
    await page.get_by_role("button", name=button).click()


async def test_multi_factor_sign_in_is_set_up_with_a_qr_code_and_asked_at_sign_in(
    browsing: Browsing, sign_up: SignUp
) -> None:
    email = await sign_up("Max Factor")
    page = await browsing.page()
    await log_in(page, email, "/account")

    await page.get_by_role("button", name="Set up multi-factor sign-in").click()
    qr = page.locator("figure.qr svg")
    await expect(qr).to_be_visible()
    assert (await qr.bounding_box() or {}).get("width", 0) > 100
    secret = (await page.locator("#mfa-secret").text_content()) or ""
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    totp = pyotp.TOTP(secret)
    await enter_code(page, totp.at(time.time() - 30), "Turn on")
    await expect(page.get_by_role("status").first).to_have_text("Multi-factor sign-in is on.")

    await page.get_by_role("button", name="Log out").click()
    await page.goto("/login?next=/me/appointments")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Enter your sign-in code")).to_be_visible()
    await enter_code(page, "000000" if totp.now() != "000000" else "111111", "Continue")
    await expect(page.get_by_role("alert")).to_have_text("The code is not valid.")
    await enter_code(page, totp.now(), "Continue")
    await page.wait_for_url("**/me/appointments")
    # The refused code's page answers 401, which Chromium logs; nothing else may be logged.
    refused = [error for error in browsing.errors if "/login/code" in error and "401" in error]
    assert len(refused) == 1
    assert [error for error in browsing.errors if error not in refused] == []
