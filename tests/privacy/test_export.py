"""Export: `GET /v1/me/export` and `slotease gdpr export` give the person every record about
them, and nobody else's; `slotease gdpr erase` erases like `DELETE /v1/me`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.auth.support import RunCli, assert_problem
from tests.auth.support import run_cli as run_cli
from tests.factories import Owner, make_user
from tests.privacy.arrange import Person, find_markers, seed_person

pytestmark = pytest.mark.anyio


def _check_export(records: dict[str, Any], person: Person) -> None:
    assert records["user"]["id"] == str(person.user.id)
    assert records["user"]["email"] == person.user.email
    assert records["profile"]["full_name"] == person.full_name
    assert records["profile"]["phone"] == person.phone
    assert {a["notes"] for a in records["appointments"]} == {person.notes}
    assert len(records["appointments"]) == 3
    assert [f["comment"] for f in records["feedback"]] == [person.comment]
    assert [t["id"] for t in records["tickets"]] == [str(person.ticket_id)]
    assert len(records["waitlist"]) == 1
    assert {n["channel"] for n in records["notifications"]} >= {"in_app", "email"}
    assert records["notification_preferences"]["push_token"] == person.push_token
    assert {(c["purpose"], c["granted"]) for c in records["consents"]} == {
        ("marketing", True), ("sms", False)
    }  # fmt: skip
    assert [m["role"] for m in records["memberships"]] == ["staff"]
    assert [i["email"] for i in records["invitations"]] == [person.user.email]
    assert records["calendar_feed"] is not None
    assert len(records["sessions"]) == 1
    assert "token_hash" not in records["sessions"][0]
    assert {"typed": person.full_name} in [e["properties"] for e in records["analytics_events"]]
    audited = {(e["table"], e["operation"]) for e in records["audit_entries"]}
    assert {("appointments", "INSERT"), ("feedback", "INSERT"), ("tickets", "INSERT")} <= audited


async def test_the_export_holds_every_record_about_the_person_and_only_theirs(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    person = await seed_person(client, owner)
    other = await seed_person(client, owner)
    response = await client.get("/v1/me/export", headers=person.user.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="slotease-export-{person.user.id}.json"'
    )
    _check_export(response.json(), person)
    for marker in other.markers.values():
        assert marker not in response.text
    assert_problem(await client.get("/v1/me/export"), 401)


async def test_the_operator_exports_and_erases_by_email(
    client: httpx.AsyncClient, owner: Owner, run_cli: RunCli
) -> None:
    person = await seed_person(client, owner)
    result = await run_cli("gdpr", "export", person.user.email.upper())
    assert result.exit_code == 0, result.output
    _check_export(json.loads(result.stdout), person)

    result = await run_cli("gdpr", "erase", person.user.email, stdin="n\n")
    assert result.exit_code != 0
    assert find_markers(owner, {"email": person.user.email}) != []
    result = await run_cli("gdpr", "erase", person.user.email, "--yes")
    assert result.exit_code == 0, result.output
    assert f"erased {person.user.id}" in result.stdout
    assert owner.execute(
        "select status from public.appointments where id = %s", (person.upcoming_id,)
    ).fetchone() == ("cancelled",)
    assert find_markers(owner, person.markers) == []
    # Once erased, the address names nobody.
    result = await run_cli("gdpr", "export", person.user.email)
    assert result.exit_code == 1
    assert "No account" in result.output


async def test_the_operator_cannot_erase_an_organizations_last_admin(
    owner: Owner, run_cli: RunCli
) -> None:
    admin = make_user(owner)
    owner.execute(
        "insert into public.organizations (name, slug, kind, timezone) values"
        " ('Solo', 'solo-' || substr(md5(random()::text), 1, 8), 'bank', 'UTC')"
        " returning id"
    )
    org = owner.execute("select id from public.organizations where name = 'Solo'").fetchone()
    assert org is not None
    owner.execute(
        "insert into public.organization_members values (%s, %s, 'admin')", (org[0], admin.id)
    )
    result = await run_cli("gdpr", "erase", admin.email, "--yes")
    assert result.exit_code == 1
    assert "only admin" in result.output
    assert find_markers(owner, {"email": admin.email}) != []
