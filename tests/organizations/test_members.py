from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from slotease.kit.secrets import hash_secret
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


async def invite(
    client: httpx.AsyncClient, admin: User, org_id: uuid.UUID, email: str, role: str = "staff"
) -> httpx.Response:
    return await client.post(
        f"/v1/organizations/{org_id}/members",
        json={"email": email, "role": role},
        headers=admin.headers,
    )


async def accept(client: httpx.AsyncClient, user: User, invitation_id: str) -> httpx.Response:
    return await client.post(f"/v1/invitations/{invitation_id}/accept", headers=user.headers)


async def pending_for(client: httpx.AsyncClient, user: User) -> list[dict[str, str]]:
    response = await client.get("/v1/me/invitations", headers=user.headers)
    assert response.status_code == 200
    items: list[dict[str, str]] = response.json()["items"]
    return items


def invitation_jobs(owner: Owner) -> list[dict[str, str]]:
    rows = owner.execute(
        "select args from public.procrastinate_jobs"
        " where task_name = 'organizations.send_invitation' order by id"
    ).fetchall()
    return [row[0] for row in rows]


async def test_an_invitation_makes_a_member_only_once_accepted(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    newcomer = make_user(owner)
    org_id = make_organization(owner, admin, name="Harbour Clinic")
    response = await invite(client, admin, org_id, newcomer.email.upper())
    assert response.status_code == 202, response.text
    invitation_id = response.json()["invitation_id"]
    assert response.json() == {
        "invitation_id": invitation_id,
        "email": response.json()["email"],
        "role": "staff",
        "status": "pending",
    }
    assert response.json()["email"].lower() == newcomer.email
    assert role_of(owner, org_id, newcomer) is None

    [item] = await pending_for(client, newcomer)
    assert (item["invitation_id"], item["organization_id"], item["organization_name"]) == (
        invitation_id,
        str(org_id),
        "Harbour Clinic",
    )
    assert item["role"] == "staff"
    assert await pending_for(client, admin) == []

    accepted = await accept(client, newcomer, invitation_id)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json() == {
        "user_id": str(newcomer.id),
        "organization_id": str(org_id),
        "role": "staff",
    }
    assert role_of(owner, org_id, newcomer) == "staff"
    again = await accept(client, newcomer, invitation_id)
    assert_problem(again, 404)
    assert await pending_for(client, newcomer) == []


async def test_the_answer_is_the_same_whether_or_not_the_email_has_an_account(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    known = make_user(owner)
    org_id = make_organization(owner, admin)
    owner.execute("delete from public.procrastinate_jobs")
    answers = [
        await invite(client, admin, org_id, email)
        for email in (known.email, f"nobody-{uuid.uuid4().hex[:8]}@example.com")
    ]

    for response in answers:
        assert response.status_code == 202
        assert sorted(response.headers) == sorted(answers[0].headers)
        assert {
            k: v for k, v in response.json().items() if k not in ("invitation_id", "email")
        } == {
            "role": "staff",
            "status": "pending",
        }
    # Both get their link; nothing else happens for the one with an account.
    jobs = invitation_jobs(owner)
    assert [job["invitation_id"] for job in jobs] == [r.json()["invitation_id"] for r in answers]
    assert role_of(owner, org_id, known) is None


async def test_the_token_is_stored_hashed_and_a_new_invitation_replaces_the_old(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    newcomer = make_user(owner)
    org_id = make_organization(owner, admin)
    owner.execute("delete from public.procrastinate_jobs")
    first = (await invite(client, admin, org_id, newcomer.email)).json()["invitation_id"]
    second = (await invite(client, admin, org_id, newcomer.email, "admin")).json()["invitation_id"]

    stored = owner.execute(
        "select id::text, token_hash, role, expires_at - created_at from public.invitations"
        " where organization_id = %s",
        (org_id,),
    ).fetchall()
    assert [(row[0], row[2]) for row in stored] == [(second, "admin")]
    assert stored[0][3] == timedelta(days=7)
    token = invitation_jobs(owner)[-1]["token"]
    assert stored[0][1] == hash_secret(token) != token
    old = await accept(client, newcomer, first)
    assert_problem(old, 404)
    accepted = await accept(client, newcomer, second)
    assert accepted.json()["role"] == "admin"


async def test_only_the_invited_address_accepts_and_not_after_expiry(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    invitee = make_user(owner)
    someone_else = make_user(owner)
    org_id = make_organization(owner, admin)
    invitation_id = (await invite(client, admin, org_id, invitee.email)).json()["invitation_id"]

    for caller in (someone_else, admin):
        response = await accept(client, caller, invitation_id)
        assert_problem(response, 404)
    assert role_of(owner, org_id, someone_else) is None
    assert_problem(await client.post(f"/v1/invitations/{invitation_id}/accept"), 401)

    owner.execute(
        "update public.invitations set expires_at = now() - interval '1 second' where id = %s",
        (invitation_id,),
    )
    expired = await accept(client, invitee, invitation_id)
    assert_problem(expired, 404)
    assert role_of(owner, org_id, invitee) is None
    assert await pending_for(client, invitee) == []


async def test_the_invitee_declines_and_the_admin_revokes(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    staff = make_user(owner)
    invitee = make_user(owner)
    org_id = make_organization(owner, admin)
    add_member(owner, org_id, staff, "staff")
    declined = (await invite(client, admin, org_id, invitee.email)).json()["invitation_id"]
    revoked = (await invite(client, admin, org_id, f"x-{invitee.email}")).json()["invitation_id"]

    # Staff do not see their organization's invitations; strangers see none.
    for caller in (staff, make_user(owner)):
        response = await client.delete(f"/v1/invitations/{declined}", headers=caller.headers)
        assert_problem(response, 404)
    response = await client.delete(f"/v1/invitations/{declined}", headers=invitee.headers)
    assert response.status_code == 204
    response = await client.delete(f"/v1/invitations/{revoked}", headers=admin.headers)
    assert response.status_code == 204
    assert_problem(await client.delete(f"/v1/invitations/{revoked}", headers=admin.headers), 404)
    gone = await accept(client, invitee, declined)
    assert_problem(gone, 404)
    left = owner.execute(
        "select count(*) from public.invitations where organization_id = %s", (org_id,)
    ).fetchone()
    assert left == (0,)


async def test_admins_list_their_pending_invitations(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    emails = [f"invitee-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(3)]
    for email in emails:
        assert (await invite(client, tenants.admin_b, tenants.org_b, email)).status_code == 202

    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/v1/organizations/{tenants.org_b}/invitations",
            params=params,
            headers=tenants.admin_b.headers,
        )
        assert response.status_code == 200, response.text
        seen += [item["email"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == emails
    for caller, status in ((tenants.staff_b, 403), (tenants.admin_a, 403)):
        response = await client.get(
            f"/v1/organizations/{tenants.org_b}/invitations", headers=caller.headers
        )
        assert_problem(response, status)
    response = await client.get(
        f"/v1/organizations/{uuid.uuid4()}/invitations", headers=tenants.admin_a.headers
    )
    assert_problem(response, 404)


async def test_an_admin_changes_a_members_role(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    staff = make_user(owner)
    org_id = make_organization(owner, admin)
    add_member(owner, org_id, staff, "staff")

    forbidden = await client.patch(
        f"/v1/organizations/{org_id}/members/{staff.id}",
        json={"role": "admin"},
        headers=staff.headers,
    )
    assert_problem(forbidden, 403)
    response = await client.patch(
        f"/v1/organizations/{org_id}/members/{staff.id}",
        json={"role": "admin"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": str(staff.id),
        "organization_id": str(org_id),
        "role": "admin",
    }
    assert role_of(owner, org_id, staff) == "admin"
    stranger = await client.patch(
        f"/v1/organizations/{org_id}/members/{make_user(owner).id}",
        json={"role": "admin"},
        headers=admin.headers,
    )
    assert_problem(stranger, 404)


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


async def test_only_admins_of_that_organization_invite(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    admin_a, staff_b, org_b = tenants.admin_a, tenants.staff_b, tenants.org_b
    target = make_user(owner)

    for user in (admin_a, staff_b):
        assert_problem(await invite(client, user, org_b, target.email, "admin"), 403)
    response = await client.post(
        f"/v1/organizations/{org_b}/members", json={"email": target.email, "role": "admin"}
    )
    assert_problem(response, 401)
    assert_problem(await invite(client, admin_a, uuid.uuid4(), target.email), 404)
    owner.execute("update public.organizations set is_active = false where id = %s", (org_b,))
    assert_problem(await invite(client, admin_a, org_b, target.email), 404)
    invitations = owner.execute(
        "select count(*) from public.invitations where organization_id = %s", (org_b,)
    ).fetchone()
    assert invitations == (0,)


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
    demoted = await client.patch(
        f"/v1/organizations/{org_id}/members/{admin.id}",
        json={"role": "staff"},
        headers=admin.headers,
    )
    assert_problem(demoted, 409)
    # Nor by accepting an invitation to a lesser role.
    invitation = (await invite(client, admin, org_id, admin.email)).json()["invitation_id"]
    accepted = await accept(client, admin, invitation)
    assert_problem(accepted, 409)
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


def test_no_function_turns_an_email_into_a_user_id(owner: Owner) -> None:
    """Adding a member by email answered admins of any organization with the user's id."""
    row = owner.execute("select to_regprocedure('app.user_id_by_email(text)')").fetchone()
    assert row == (None,)
