"""The admin's audit page in Chromium: who changed what, filtered by table."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.factories import Owner, make_organization, make_service
from tests.web.conftest import Browsing, SignUp, log_in
from tests.web.test_journeys import user_of

pytestmark = pytest.mark.anyio


async def test_an_admin_reads_the_audit_trail_and_filters_it(
    browsing: Browsing, owner: Owner, sign_up: SignUp
) -> None:
    admin_email = await sign_up("Ada Admin")
    org_id = make_organization(owner, user_of(owner, admin_email), name="Hilltop Clinic")
    make_service(owner, org_id, name="X-ray")
    page = await browsing.page()
    await log_in(page, admin_email, f"/admin/{org_id}")
    await (
        page.get_by_role("navigation", name="Administration")
        .get_by_role("link", name="Audit trail")
        .click()
    )
    await page.wait_for_url(f"**/admin/{org_id}/audit")
    entries = page.locator("tr.audit-entry")
    await expect(entries.filter(has_text="INSERT organizations")).to_have_count(1)
    await expect(entries.filter(has_text="INSERT services")).to_contain_text("X-ray")

    await page.get_by_label("Table").fill("services")
    await page.get_by_role("button", name="Show").click()
    await expect(entries).to_have_count(1)
    await expect(entries).to_contain_text("INSERT services")
    assert browsing.errors == []
