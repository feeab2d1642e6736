"""The invitation email, end to end: the request enqueues it with the invitation, the worker
sends it over real SMTP with a link to SLOTEASE_PUBLIC_URL carrying the token."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from slotease.config import Settings
from slotease.kit.secrets import hash_secret
from tests.factories import Owner, make_organization, make_user
from tests.notifications.support import Mailbox, body_of, run_jobs, with_smtp, worker_app

pytestmark = pytest.mark.anyio

PUBLIC_URL = "https://slots.example.org"


@pytest.fixture(scope="module")
def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, mail[1]).model_copy(update={"public_url": PUBLIC_URL + "/"})


@pytest.mark.usefixtures("clean_jobs")
async def test_every_invited_address_gets_its_link_by_email(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin, name="Harbour Clinic")
    emails = [make_user(owner).email, f"new-{uuid.uuid4().hex[:8]}@example.com"]
    invitations = {}
    for email in emails:
        response = await client.post(
            f"/v1/organizations/{org_id}/members",
            json={"email": email, "role": "staff"},
            headers=admin.headers,
        )
        assert response.status_code == 202
        invitations[email] = response.json()["invitation_id"]

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    assert sorted(recipients[0] for recipients, _ in mailbox.messages) == sorted(emails)
    for recipients, message in mailbox.messages:
        invitation_id = invitations[recipients[0]]
        assert message["Subject"] == "You are invited to join Harbour Clinic on SlotEase"
        text = body_of(message)
        assert "as staff" in text
        link = re.search(rf"{re.escape(PUBLIC_URL)}/invitations/{invitation_id}\?token=(\S+)", text)
        assert link is not None, text
        stored = owner.execute(
            "select token_hash from public.invitations where id = %s", (invitation_id,)
        ).fetchone()
        assert stored == (hash_secret(link.group(1)),)


@pytest.mark.usefixtures("clean_jobs")
async def test_a_revoked_invitation_sends_nothing(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, mailbox: Mailbox
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await client.post(
        f"/v1/organizations/{org_id}/members",
        json={"email": "later@example.com", "role": "admin"},
        headers=admin.headers,
    )
    revoked = await client.delete(
        f"/v1/invitations/{response.json()['invitation_id']}", headers=admin.headers
    )
    assert revoked.status_code == 204

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    assert mailbox.messages == []
