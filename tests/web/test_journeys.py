"""Whole journeys in Chromium against a real server: pages, their scripts, the API and the
WebSocket together."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest
from playwright.async_api import expect

from slotease.kit import crypto
from tests.factories import Owner, User, add_member, make_organization, make_service, unseal
from tests.web.conftest import PASSWORD, Browsing, SignUp, log_in

pytestmark = pytest.mark.anyio


def user_of(owner: Owner, email: str) -> User:
    row = owner.execute("select id from auth.users where email = %s", (email,)).fetchone()
    assert row is not None
    return User(id=row[0], email=email, token="")


def make_queue(owner: Owner, org_id: uuid.UUID, name: str, prefix: str) -> uuid.UUID:
    row = owner.execute(
        "insert into public.queues (organization_id, name, prefix) values (%s, %s, %s)"
        " returning id",
        (org_id, name, prefix),
    ).fetchone()
    assert row is not None
    queue_id: uuid.UUID = row[0]
    return queue_id


async def test_sign_up_book_see_it_and_cancel_it(browsing: Browsing, owner: Owner) -> None:
    org_id = make_organization(owner, name="Lakeside Clinic", tz="America/New_York")
    service_id = make_service(owner, org_id, name="Blood test", duration=30)
    target = f"/o/{org_id}/s/{service_id}"
    page = await browsing.page(width=375, height=812)

    await page.goto(f"/signup?next={target}")
    await page.get_by_label("Full name").fill("Ada Walker")
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await page.wait_for_url(f"**{target}")
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    assert cookies["slotease_session"]["httpOnly"] is True
    assert cookies["slotease_session"]["sameSite"] == "Lax"
    assert cookies["csrf"]["httpOnly"] is False

    await expect(page.get_by_role("heading", name="Blood test · Lakeside Clinic")).to_be_visible()
    # Next week always has working days ahead, whatever today is.
    await page.get_by_role("button", name="Next week →").click()
    first_slot = page.locator("button.slot").first
    await expect(first_slot).to_be_visible()
    # Times are the organization's wall clock: its first slot of a day opens at 09:00.
    await expect(first_slot).to_have_text(re.compile(r"^0?9:00"))
    starts_at = await first_slot.get_attribute("data-starts-at")
    await first_slot.click()
    await page.get_by_role("button", name="Book this time").click()
    await expect(page.get_by_role("status")).to_contain_text("Booked for")

    await page.get_by_role("link", name="My appointments").click()
    item = page.locator("li.appointment")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("Blood test")
    await expect(item.locator(".badge")).to_have_text("Booked")

    async with page.expect_download() as download_info:
        await item.get_by_role("button", name="Add to calendar").click()
    download = await download_info.value
    calendar = (await download.path()).read_text()
    assert "BEGIN:VCALENDAR" in calendar
    assert "TZID=America/New_York" in calendar

    page.once("dialog", lambda dialog: dialog.accept())
    await item.get_by_role("button", name=re.compile("^Cancel")).click()
    await expect(item.locator(".badge")).to_have_text("Cancelled")
    row = owner.execute(
        "select status, starts_at from public.appointments where organization_id = %s",
        (org_id,),
    ).fetchone()
    assert row is not None
    assert row[0] == "cancelled"
    assert starts_at is not None
    assert row[1] == datetime.fromisoformat(starts_at)
    assert browsing.errors == []


async def test_a_call_reaches_the_ticket_page_and_the_board_without_a_reload(
    browsing: Browsing, owner: Owner, sign_up: SignUp
) -> None:
    org_id = make_organization(owner, name="City Bank")
    queue_id = make_queue(owner, org_id, "Counters", "B")
    customer_email = await sign_up("Ben Customer")
    clerk_email = await sign_up("Cleo Clerk")
    add_member(owner, org_id, user_of(owner, clerk_email), "staff")

    customer = await browsing.page(width=375, height=812)
    await log_in(customer, customer_email, f"/q/{queue_id}/join")
    await expect(customer.get_by_role("heading", name="Counters")).to_be_visible()
    await customer.get_by_role("button", name="Take a ticket").click()
    await customer.wait_for_url(re.compile(r"/t/[0-9a-f-]{36}$"))
    await expect(customer.locator("#live")).to_have_text("Live")
    number = (await customer.locator("#ticket-number").text_content()) or ""
    assert number.startswith("B")
    await expect(customer.locator("#position")).to_have_text("1")

    board = await browsing.page()
    await board.goto(f"/board/{queue_id}")
    await expect(board.locator("#live")).to_have_text("Live")
    await expect(board.locator("#waiting-count")).to_have_text("1")

    clerk = await browsing.page()
    await log_in(clerk, clerk_email, f"/staff/{org_id}")
    await expect(clerk.locator("#live")).to_have_text("Live")
    await expect(clerk.locator("#line")).to_contain_text(number)
    await clerk.get_by_role("textbox", name="Your counter").fill("Desk 3")
    await clerk.get_by_role("button", name="Call next").click()
    await expect(clerk.locator("#current")).to_have_text(f"{number} · Called")

    # Pushed over the WebSocket: neither page reloads.
    await expect(customer.locator("#call")).to_have_text("Please go to Desk 3")
    await expect(customer.locator("#ticket-status")).to_have_text("Called")
    await expect(board.locator("#serving")).to_contain_text(number)
    await expect(board.locator("#serving")).to_contain_text("Desk 3")
    await expect(board.locator("#waiting-count")).to_have_text("0")

    await clerk.get_by_role("button", name="Start").click()
    await expect(clerk.locator("#current")).to_have_text(f"{number} · Serving")
    await expect(customer.locator("#ticket-status")).to_have_text("Being served")
    await clerk.get_by_role("button", name="Complete").click()
    await expect(clerk.locator("#current")).to_have_text("Nobody yet.")
    await expect(customer.locator("#ticket-status")).to_have_text("Done, thank you")
    status = owner.execute(
        "select status from public.tickets where queue_id = %s", (queue_id,)
    ).fetchone()
    assert status == ("served",)
    assert browsing.errors == []


async def test_the_ticket_page_shows_its_new_place_when_the_line_moves(
    browsing: Browsing, owner: Owner, sign_up: SignUp
) -> None:
    org_id = make_organization(owner, name="Post Office")
    queue_id = make_queue(owner, org_id, "Parcels", "P")
    first_email, second_email = await sign_up("Fay First"), await sign_up("Sam Second")
    clerk_email = await sign_up("Carl Clerk")
    add_member(owner, org_id, user_of(owner, clerk_email), "staff")

    pages = []
    for email in (first_email, second_email):
        page = await browsing.page(width=375, height=812)
        await log_in(page, email, f"/q/{queue_id}/join")
        await page.get_by_role("button", name="Take a ticket").click()
        await page.wait_for_url(re.compile(r"/t/[0-9a-f-]{36}$"))
        await expect(page.locator("#live")).to_have_text("Live")
        pages.append(page)
    second = pages[1]
    await expect(second.locator("#position")).to_have_text("2")

    clerk = await browsing.page()
    await log_in(clerk, clerk_email, f"/staff/{org_id}")
    await expect(clerk.locator("#live")).to_have_text("Live")
    await clerk.get_by_role("textbox", name="Your counter").fill("Desk 1")
    await clerk.get_by_role("button", name="Call next").click()

    # The call announces one queue.moved; the page hears its own ticket.position.
    await expect(second.locator("#position")).to_have_text("1")
    await expect(pages[0].locator("#ticket-status")).to_have_text("Called")
    assert browsing.errors == []


async def test_the_admin_dashboard_draws_its_charts(
    browsing: Browsing, owner: Owner, sign_up: SignUp
) -> None:
    admin_email = await sign_up("Ana Admin")
    org_id = make_organization(owner, user_of(owner, admin_email), name="Harbour Hospital")
    make_service(owner, org_id)

    page = await browsing.page()
    await log_in(page, admin_email, f"/admin/{org_id}")
    await expect(page.locator("#org-name")).to_have_text("Harbour Hospital")
    await expect(page.locator(".kpi")).to_have_count(9)
    await expect(page.locator(".kpi").filter(has_text="Appointments")).to_contain_text("0")
    await expect(page.locator("svg.chart-svg")).to_have_count(4)
    # Six weeks of history, one point a day.
    await expect(page.locator("#chart-appointments circle")).to_have_count(43)
    assert browsing.errors == []


async def test_an_admin_sets_up_services_members_api_keys_and_webhooks(
    browsing: Browsing, owner: Owner, sign_up: SignUp
) -> None:
    admin_email = await sign_up("Ada Admin")
    clerk_email = await sign_up("Carl Clerk")
    org_id = make_organization(owner, user_of(owner, admin_email), name="Riverside Dental")
    page = await browsing.page()
    page.on("dialog", lambda dialog: dialog.accept())
    await log_in(page, admin_email, f"/admin/{org_id}")
    admin_nav = page.get_by_role("navigation", name="Administration")
    status = page.get_by_role("status")

    await admin_nav.get_by_role("link", name="Services").click()
    await page.wait_for_url(f"**/admin/{org_id}/services")
    await page.get_by_label("Name", exact=True).fill("Cleaning")
    await page.get_by_label("Duration (minutes)").fill("45")
    await page.get_by_label("Capacity").fill("2")
    await page.get_by_label("Slot interval (minutes)").fill("15")
    await page.get_by_label("Buffer (minutes)").fill("5")
    await page.get_by_label("Minimum notice (minutes)").fill("60")
    await page.get_by_label("Maximum advance (days)").fill("30")
    await page.get_by_role("button", name="Add hours").click()
    hours = page.locator(".hours-row").last
    await hours.get_by_label("Day").select_option("1")
    await hours.get_by_label("From").fill("08:30")
    await hours.get_by_label("To").fill("12:00")
    await page.get_by_role("button", name="Create service").click()
    await expect(status).to_have_text("Created Cleaning.")
    await expect(page.locator("#services tr")).to_contain_text(["Tue 08:30–12:00"])
    service = owner.execute(
        "select id, duration_minutes, capacity, slot_interval_minutes, buffer_minutes,"
        " min_notice_minutes, max_advance_days from public.services where organization_id = %s",
        (org_id,),
    ).fetchone()
    assert service is not None
    assert service[1:] == (45, 2, 15, 5, 60, 30)
    week = owner.execute(
        "select weekday, start_time::text, end_time::text from public.service_working_hours"
        " where service_id = %s",
        (service[0],),
    ).fetchall()
    assert week == [(1, "08:30:00", "12:00:00")]

    await page.get_by_role("button", name="Edit Cleaning").click()
    await page.get_by_label("Closed from").fill("2030-01-10T09:00")
    await page.get_by_label("Until").fill("2030-01-10T12:00")
    await page.get_by_label("Reason").fill("Staff training")
    await page.get_by_role("button", name="Add closure").click()
    await expect(page.locator("li.closure")).to_contain_text("Staff training")
    closure = owner.execute(
        "select starts_at, ends_at from public.service_closures where service_id = %s",
        (service[0],),
    ).fetchone()
    # Typed as the organization's wall clock: Paris is UTC+1 in January.
    assert closure == (
        datetime.fromisoformat("2030-01-10T08:00:00+00:00"),
        datetime.fromisoformat("2030-01-10T11:00:00+00:00"),
    )

    await page.get_by_label("Capacity").fill("3")
    await page.get_by_role("checkbox", name="Active").uncheck()
    await page.get_by_role("button", name="Save service").click()
    await expect(status).to_have_text("Saved Cleaning.")
    await expect(page.locator("#services tr")).to_have_count(0)
    saved = owner.execute(
        "select capacity, is_active from public.services where id = %s", (service[0],)
    ).fetchone()
    assert saved == (3, False)

    await admin_nav.get_by_role("link", name="Members").click()
    # The form is wired once the page has loaded its organization.
    await expect(page.locator("#org-name")).to_have_text("Riverside Dental")
    for email in ("later@example.com", clerk_email):
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Role").select_option("staff")
        await page.get_by_role("button", name="Send invitation").click()
        await expect(status).to_have_text(f"Invitation sent to {email}.")
    await expect(page.locator("tr.invitation")).to_have_count(2)
    await page.get_by_role("button", name="Revoke the invitation of later@example.com").click()
    await expect(status).to_have_text("The invitation of later@example.com was revoked.")
    await expect(page.locator("tr.invitation")).to_have_count(1)
    await expect(page.locator("tr.invitation")).to_contain_text(clerk_email)
    clerk = user_of(owner, clerk_email)
    await expect(page.locator("tr.member")).to_have_count(1)
    # The clerk follows the emailed link, signs in and accepts; the roster then shows them.
    invited = owner.execute(
        "select id from public.invitations where lower(email) = lower(%s)", (clerk_email,)
    ).fetchone()
    assert invited is not None
    clerk_page = await browsing.page()
    await log_in(clerk_page, clerk_email, f"/invitations/{invited[0]}")
    await expect(clerk_page.locator("#invitation-text")).to_have_text(
        "Riverside Dental invites you to join as staff."
    )
    await clerk_page.get_by_role("button", name="Accept").click()
    await expect(clerk_page.get_by_role("status")).to_have_text("You joined Riverside Dental.")
    await page.reload()
    await expect(page.locator("tr.member").filter(has_text="Carl Clerk")).to_contain_text("Staff")
    await expect(page.locator("tr.invitation")).to_have_count(0)
    role = owner.execute(
        "select role from public.organization_members where organization_id = %s and user_id = %s",
        (org_id, clerk.id),
    ).fetchone()
    assert role == ("staff",)
    await page.get_by_role("button", name="Remove Ada Admin").click()
    await expect(status).to_have_text("An organization must keep at least one admin.")
    await expect(page.locator("tr.member")).to_have_count(2)

    await admin_nav.get_by_role("link", name="API keys").click()
    await expect(page.locator("#org-name")).to_have_text("Riverside Dental")
    await page.get_by_label("Name").fill("Lobby kiosk")
    await page.get_by_label("Role").select_option("staff")
    await page.get_by_role("button", name="Create key").click()
    await expect(status).to_have_text("Created Lobby kiosk.")
    key = await page.get_by_label("New API key").input_value()
    stored = owner.execute(
        "select id, prefix, role from public.api_keys where organization_id = %s", (org_id,)
    ).fetchone()
    assert stored is not None
    assert key.startswith(stored[1])
    assert stored[2] == "staff"
    await expect(page.locator("tr.api-key")).to_contain_text([stored[1]])
    await page.get_by_role("button", name=f"Rotate Lobby kiosk ({stored[1]})").click()
    await expect(status).to_contain_text("Rotated Lobby kiosk")
    await expect(page.locator("tr.api-key")).to_have_count(2)
    rotated = await page.get_by_label("New API key").input_value()
    fresh = owner.execute(
        "select id, prefix from public.api_keys where organization_id = %s and id <> %s",
        (org_id, stored[0]),
    ).fetchone()
    assert fresh is not None
    assert rotated.startswith(fresh[1])
    assert rotated != key
    await page.get_by_role("button", name=f"Revoke Lobby kiosk ({fresh[1]})").click()
    await expect(status).to_have_text("Revoked Lobby kiosk.")
    # The rotated-out key lives on until its expiry; the revoked one is gone at once.
    await expect(page.locator("tr.api-key")).to_have_count(1)
    await expect(page.locator("tr.api-key")).to_contain_text(stored[1])
    revoked = owner.execute(
        "select revoked_at is not null from public.api_keys where id = %s", (fresh[0],)
    ).fetchone()
    assert revoked == (True,)

    await admin_nav.get_by_role("link", name="Webhooks").click()
    hook_url = "https://93.184.216.34/slotease"
    await page.get_by_label("URL").fill(hook_url)
    await page.get_by_label("appointment.created").check()
    await page.get_by_label("ticket.called").check()
    await page.get_by_role("button", name="Add webhook").click()
    await expect(status).to_have_text("Webhook added.")
    secret = await page.get_by_role("textbox", name="Signing secret").input_value()
    hook = owner.execute(
        "select id, events, secret from public.webhooks where organization_id = %s", (org_id,)
    ).fetchone()
    assert hook is not None
    assert hook[1] == ["appointment.created", "ticket.called"]
    assert secret == unseal(crypto.WEBHOOK_SECRET, hook[0], hook[2])
    await page.get_by_role("button", name=f"Deliveries to {hook_url}").click()
    await expect(page.locator("#deliveries")).to_have_text("No delivery yet.")
    await page.get_by_role("button", name=f"Delete {hook_url}").click()
    await expect(status).to_have_text("Webhook deleted.")
    await expect(page.locator("tr.webhook")).to_have_count(0)
    left = owner.execute("select count(*) from public.webhooks where id = %s", (hook[0],))
    assert left.fetchone() == (0,)
    # Chromium logs every failed request: the refused removal is the only one.
    assert len(browsing.errors) == 1
    assert "/members: Failed to load resource" in browsing.errors[0]
    assert "409" in browsing.errors[0]
