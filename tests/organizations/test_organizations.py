from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.factories import Owner, add_member, make_organization, make_user
from tests.organizations.arrange import two_tenants
from tests.organizations.checks import assert_invalid, assert_problem

pytestmark = pytest.mark.anyio

VALID = {
    "name": "Central Hospital",
    "kind": "hospital",
    "timezone": "Europe/Paris",
    "address": "1 Rue de Rivoli, Paris",
    "location": {"lat": 48.8566, "lng": 2.3522},
}


def count_organizations(owner: Owner) -> int:
    row = owner.execute("select count(*) from public.organizations").fetchone()
    assert row is not None
    return int(row[0])


def members_of(owner: Owner, org_id: str | uuid.UUID) -> dict[uuid.UUID, str]:
    rows = owner.execute(
        "select user_id, role from public.organization_members where organization_id = %s",
        (org_id,),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


async def test_create_returns_the_organization_and_makes_the_caller_its_admin(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner)
    response = await client.post("/v1/organizations", json=VALID, headers=user.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "slug",
        "kind",
        "timezone",
        "address",
        "location",
        "settings",
    }
    assert body["name"] == "Central Hospital"
    assert body["slug"].startswith("central-hospital")
    assert body["kind"] == "hospital"
    assert body["timezone"] == "Europe/Paris"
    assert body["address"] == "1 Rue de Rivoli, Paris"
    assert body["location"] == {"lat": 48.8566, "lng": 2.3522}
    assert members_of(owner, body["id"]) == {user.id: "admin"}


async def test_optional_fields_may_be_left_out(client: httpx.AsyncClient, owner: Owner) -> None:
    user = make_user(owner)
    response = await client.post(
        "/v1/organizations",
        json={"name": "  Town Hall  ", "kind": "government", "timezone": "UTC"},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Town Hall"
    assert body["address"] is None
    assert body["location"] is None


async def test_a_taken_slug_gets_a_random_suffix(client: httpx.AsyncClient, owner: Owner) -> None:
    user = make_user(owner)
    payload = {**VALID, "name": "Saint Mary Clinic", "kind": "clinic"}
    first = await client.post("/v1/organizations", json=payload, headers=user.headers)
    second = await client.post("/v1/organizations", json=payload, headers=user.headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["slug"] == "saint-mary-clinic"
    assert re.fullmatch(r"saint-mary-clinic-[0-9a-f]{6}", second.json()["slug"])


@pytest.mark.parametrize(
    ("name", "slug_pattern"),
    [
        ("Clínica São José", r"clinica-sao-jose"),
        ("Dr. Müller & Söhne -- GmbH", r"dr-muller-sohne-gmbh"),
        ("東京クリニック", r"org(-[0-9a-f]{6})?"),
        ("x" * 200, r"x{50}"),
    ],
)
async def test_slugs_are_lowercase_ascii_words(
    client: httpx.AsyncClient, owner: Owner, name: str, slug_pattern: str
) -> None:
    user = make_user(owner)
    response = await client.post(
        "/v1/organizations", json={**VALID, "name": name}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    assert re.fullmatch(slug_pattern, response.json()["slug"])


async def test_anonymous_callers_cannot_create(client: httpx.AsyncClient, owner: Owner) -> None:
    before = count_organizations(owner)
    response = await client.post("/v1/organizations", json=VALID)
    assert_problem(response, 401)
    assert count_organizations(owner) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "restaurant"}, "kind"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "EST"}, "timezone"),
        ({"timezone": "CET"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "europe/paris"}, "timezone"),
        ({"location": {"lat": 90.5, "lng": 0}}, "lat"),
        ({"location": {"lat": 0, "lng": -180.01}}, "lng"),
        ({"location": {"lat": 10}}, "lng"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"address": "a" * 501}, "address"),
        ({"slug": "chosen"}, "slug"),
    ],
)
async def test_invalid_input_is_422_and_creates_nothing(
    client: httpx.AsyncClient, owner: Owner, change: dict[str, Any], field: str
) -> None:
    user = make_user(owner)
    before = count_organizations(owner)
    response = await client.post(
        "/v1/organizations", json={**VALID, **change}, headers=user.headers
    )
    assert_invalid(response, field)
    assert count_organizations(owner) == before


async def test_missing_required_fields_are_named(client: httpx.AsyncClient, owner: Owner) -> None:
    user = make_user(owner)
    response = await client.post("/v1/organizations", json={}, headers=user.headers)
    assert_invalid(response, "name", "kind", "timezone")


async def test_anyone_reads_an_active_organization(client: httpx.AsyncClient, owner: Owner) -> None:
    org_id = make_organization(owner, name="Open Clinic")
    response = await client.get(f"/v1/organizations/{org_id}")
    assert response.status_code == 200
    assert response.json()["id"] == str(org_id)
    assert response.json()["location"] == {"lat": 48.85, "lng": 2.35}


async def test_unknown_or_invisible_organizations_are_404(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    outsider = make_user(owner)
    hidden = make_organization(owner, admin, name="Closed Clinic")
    owner.execute("update public.organizations set is_active = false where id = %s", (hidden,))

    assert_problem(await client.get(f"/v1/organizations/{uuid.uuid4()}"), 404)
    assert_problem(await client.get(f"/v1/organizations/{hidden}"), 404)
    assert_problem(await client.get(f"/v1/organizations/{hidden}", headers=outsider.headers), 404)
    own_view = await client.get(f"/v1/organizations/{hidden}", headers=admin.headers)
    assert own_view.status_code == 200
    assert_invalid(await client.get("/v1/organizations/not-a-uuid"), "org_id")


async def test_an_admin_updates_the_organization(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin, name="Old Name")
    response = await client.patch(
        f"/v1/organizations/{org_id}",
        json={
            "name": "New Name",
            "kind": "bank",
            "timezone": "America/New_York",
            "address": "5th Avenue",
            "location": {"lat": 40.7128, "lng": -74.006},
        },
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["kind"], body["timezone"], body["address"]) == (
        "New Name",
        "bank",
        "America/New_York",
        "5th Avenue",
    )
    assert body["location"] == {"lat": 40.7128, "lng": -74.006}

    cleared = await client.patch(
        f"/v1/organizations/{org_id}",
        json={"address": None, "location": None},
        headers=admin.headers,
    )
    assert cleared.status_code == 200
    assert cleared.json()["address"] is None
    assert cleared.json()["location"] is None
    assert cleared.json()["name"] == "New Name"
    row = owner.execute(
        "select location is null, name from public.organizations where id = %s", (org_id,)
    ).fetchone()
    assert row == (True, "New Name")


async def test_patch_validation(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin, name="Strict Clinic")
    for payload, field in [
        ({"name": None}, "body"),
        ({"timezone": "PST"}, "timezone"),
        ({"kind": None}, "body"),
        ({"location": {"lat": -91, "lng": 0}}, "lat"),
        ({"color": "blue"}, "color"),
    ]:
        response = await client.patch(
            f"/v1/organizations/{org_id}", json=payload, headers=admin.headers
        )
        assert_invalid(response, field)
    row = owner.execute(
        "select name, timezone from public.organizations where id = %s", (org_id,)
    ).fetchone()
    assert row == ("Strict Clinic", "Europe/Paris")


async def test_patch_is_403_for_non_admins_and_404_when_invisible(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    staff = make_user(owner)
    customer = make_user(owner)
    org_id = make_organization(owner, admin, name="Guarded Clinic")
    add_member(owner, org_id, staff, "staff")

    for user in (staff, customer):
        response = await client.patch(
            f"/v1/organizations/{org_id}", json={"name": "Taken Over"}, headers=user.headers
        )
        assert_problem(response, 403)
    assert_problem(
        await client.patch(f"/v1/organizations/{org_id}", json={"name": "Taken Over"}), 401
    )

    owner.execute("update public.organizations set is_active = false where id = %s", (org_id,))
    response = await client.patch(
        f"/v1/organizations/{org_id}", json={"name": "Taken Over"}, headers=customer.headers
    )
    assert_problem(response, 404)
    # Staff still see their own inactive organization, so they are told it is not theirs to change.
    response = await client.patch(
        f"/v1/organizations/{org_id}", json={"name": "Taken Over"}, headers=staff.headers
    )
    assert_problem(response, 403)
    row = owner.execute("select name from public.organizations where id = %s", (org_id,)).fetchone()
    assert row == ("Guarded Clinic",)


async def test_an_admin_of_one_organization_cannot_patch_another(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    admin_a, org_b = tenants.admin_a, tenants.org_b
    response = await client.patch(
        f"/v1/organizations/{org_b}", json={"name": "Hijacked"}, headers=admin_a.headers
    )
    assert_problem(response, 403)
    row = owner.execute("select name from public.organizations where id = %s", (org_b,)).fetchone()
    assert row == ("Org B",)


async def test_only_platform_admins_change_is_active(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    operator = make_user(owner, super_admin=True)
    org_id = make_organization(owner, admin, name="Switchable Clinic")

    response = await client.patch(
        f"/v1/organizations/{org_id}", json={"is_active": False}, headers=admin.headers
    )
    assert_problem(response, 403)
    response = await client.patch(
        f"/v1/organizations/{org_id}", json={"is_active": False}, headers=operator.headers
    )
    assert response.status_code == 200, response.text
    row = owner.execute(
        "select is_active from public.organizations where id = %s", (org_id,)
    ).fetchone()
    assert row == (False,)
    assert_problem(await client.get(f"/v1/organizations/{org_id}"), 404)
