from __future__ import annotations

import json
import uuid

import httpx
import psycopg
import pytest

from tests.factories import Owner, User, add_member, make_organization, make_user
from tests.organizations.arrange import two_tenants
from tests.organizations.checks import assert_invalid, assert_problem

pytestmark = pytest.mark.anyio


def role_of(owner: Owner, org_id: uuid.UUID, user: User) -> str | None:
    row = owner.execute(
        "select role from public.organization_members where organization_id = %s and user_id = %s",
        (org_id, user.id),
    ).fetchone()
    return None if row is None else str(row[0])


async def test_members_see_the_roster_with_names(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner, name="Alice Admin")
    staff = make_user(owner, name="Bob Staff")
    org_id = make_organization(owner, admin)
    add_member(owner, org_id, staff, "staff")

    for user in (admin, staff):
        response = await client.get(f"/v1/organizations/{org_id}/members", headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next_cursor"] is None
        assert body["items"] == [
            {
                "user_id": str(admin.id),
                "organization_id": str(org_id),
                "role": "admin",
                "full_name": "Alice Admin",
            },
            {
                "user_id": str(staff.id),
                "organization_id": str(org_id),
                "role": "staff",
                "full_name": "Bob Staff",
            },
        ]


async def test_the_roster_pages_without_gaps(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner, name="Member 00")
    org_id = make_organization(owner, admin)
    staff = [make_user(owner, name=f"Member {i:02d}") for i in range(1, 7)]
    for user in staff:
        add_member(owner, org_id, user, "staff")

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/v1/organizations/{org_id}/members", params=params, headers=admin.headers
        )
        assert response.status_code == 200
        seen += [item["full_name"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Member {i:02d}" for i in range(7)]


async def test_the_roster_is_403_for_outsiders_and_404_when_invisible(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    outsider = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await client.get(f"/v1/organizations/{org_id}/members", headers=outsider.headers)
    assert_problem(response, 403)
    assert_problem(await client.get(f"/v1/organizations/{org_id}/members"), 401)
    response = await client.get(
        f"/v1/organizations/{uuid.uuid4()}/members", headers=outsider.headers
    )
    assert_problem(response, 404)
    owner.execute("update public.organizations set is_active = false where id = %s", (org_id,))
    response = await client.get(f"/v1/organizations/{org_id}/members", headers=outsider.headers)
    assert_problem(response, 404)


async def test_an_admin_adds_a_member_by_email(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    newcomer = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await client.post(
        f"/v1/organizations/{org_id}/members",
        json={"email": newcomer.email.upper(), "role": "staff"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "user_id": str(newcomer.id),
        "organization_id": str(org_id),
        "role": "staff",
    }
    assert role_of(owner, org_id, newcomer) == "staff"

    promoted = await client.post(
        f"/v1/organizations/{org_id}/members",
        json={"email": newcomer.email, "role": "admin"},
        headers=admin.headers,
    )
    assert promoted.status_code == 201
    assert promoted.json()["role"] == "admin"
    assert role_of(owner, org_id, newcomer) == "admin"


async def test_an_unknown_email_is_404(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await client.post(
        f"/v1/organizations/{org_id}/members",
        json={"email": "nobody-here@example.com", "role": "staff"},
        headers=admin.headers,
    )
    assert_problem(response, 404)
    assert response.json()["detail"] == "No such user."


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "role": "staff"}, "email"),
        ({"email": "a@example.com", "role": "owner"}, "role"),
        ({"email": "a@example.com"}, "role"),
        ({"role": "staff"}, "email"),
    ],
)
async def test_invalid_member_payloads_are_422(
    client: httpx.AsyncClient, owner: Owner, payload: dict[str, str], field: str
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await client.post(
        f"/v1/organizations/{org_id}/members", json=payload, headers=admin.headers
    )
    assert_invalid(response, field)


async def test_only_admins_of_that_organization_add_members(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    admin_a, staff_b, org_b = tenants.admin_a, tenants.staff_b, tenants.org_b
    target = make_user(owner)

    for user in (admin_a, staff_b):
        response = await client.post(
            f"/v1/organizations/{org_b}/members",
            json={"email": target.email, "role": "admin"},
            headers=user.headers,
        )
        assert_problem(response, 403)
    response = await client.post(
        f"/v1/organizations/{org_b}/members", json={"email": target.email, "role": "admin"}
    )
    assert_problem(response, 401)
    assert role_of(owner, org_b, target) is None
    response = await client.post(
        f"/v1/organizations/{uuid.uuid4()}/members",
        json={"email": target.email, "role": "admin"},
        headers=admin_a.headers,
    )
    assert_problem(response, 404)


async def test_removing_a_member(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    staff = make_user(owner)
    org_id = make_organization(owner, admin)
    add_member(owner, org_id, staff, "staff")

    forbidden = await client.delete(
        f"/v1/organizations/{org_id}/members/{admin.id}", headers=staff.headers
    )
    assert_problem(forbidden, 403)
    response = await client.delete(
        f"/v1/organizations/{org_id}/members/{staff.id}", headers=admin.headers
    )
    assert response.status_code == 204
    assert response.content == b""
    assert role_of(owner, org_id, staff) is None
    again = await client.delete(
        f"/v1/organizations/{org_id}/members/{staff.id}", headers=admin.headers
    )
    assert_problem(again, 404)


async def test_the_last_admin_stays(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await client.delete(
        f"/v1/organizations/{org_id}/members/{admin.id}", headers=admin.headers
    )
    assert_problem(response, 409)
    demoted = await client.post(
        f"/v1/organizations/{org_id}/members",
        json={"email": admin.email, "role": "staff"},
        headers=admin.headers,
    )
    assert_problem(demoted, 409)
    assert role_of(owner, org_id, admin) == "admin"

    second = make_user(owner)
    add_member(owner, org_id, second, "admin")
    response = await client.delete(
        f"/v1/organizations/{org_id}/members/{admin.id}", headers=admin.headers
    )
    assert response.status_code == 204
    assert role_of(owner, org_id, second) == "admin"


async def test_admin_of_one_organization_cannot_remove_members_of_another(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    admin_a, staff_b, org_b = tenants.admin_a, tenants.staff_b, tenants.org_b
    response = await client.delete(
        f"/v1/organizations/{org_b}/members/{staff_b.id}", headers=admin_a.headers
    )
    assert_problem(response, 403)
    assert role_of(owner, org_b, staff_b) == "staff"


def user_id_by_email_as(owner: Owner, caller: User, email: str) -> object:
    """Call app.user_id_by_email as the API does: role authenticated with the caller's claims."""
    with owner.transaction():
        owner.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(caller.id), "role": "authenticated"}),),
        )
        row = owner.execute("select app.user_id_by_email(%s)", (email,)).fetchone()
    assert row is not None
    return row[0]


def test_user_lookup_by_email_answers_only_admins(owner: Owner) -> None:
    admin = make_user(owner)
    customer = make_user(owner)
    target = make_user(owner)
    make_organization(owner, admin)
    assert user_id_by_email_as(owner, admin, target.email) == target.id
    assert user_id_by_email_as(owner, customer, target.email) is None


def test_anonymous_callers_cannot_look_users_up(owner: Owner) -> None:
    target = make_user(owner)
    with owner.transaction():
        owner.execute("set local role anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            owner.execute("select app.user_id_by_email(%s)", (target.email,))
