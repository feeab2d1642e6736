"""API keys of an organization: issuing, listing, revoking, rotating, and signing in with one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from slotease.kit.secrets import hash_secret
from tests.auth.support import assert_problem, issue_api_key
from tests.factories import User, add_member, make_organization, make_user

pytestmark = pytest.mark.anyio

Owner = psycopg.Connection[Any]


def keys_url(organization_id: uuid.UUID) -> str:
    return f"/v1/organizations/{organization_id}/api-keys"


def expire_key(owner: Owner, key_id: str) -> None:
    owner.execute(
        "update public.api_keys set expires_at = now() - interval '1 second' where id = %s",
        (key_id,),
    )


@pytest.fixture
def admin(owner: Owner) -> User:
    return make_user(owner, name="Org Admin")


@pytest.fixture
def organization(owner: Owner, admin: User) -> uuid.UUID:
    return make_organization(owner, admin)


# ---------------------------------------------------------------------------------------
# Managing keys as a signed-in admin.
# ---------------------------------------------------------------------------------------
async def test_admin_creates_a_key_that_is_stored_only_as_a_hash(
    client: httpx.AsyncClient, owner: Owner, admin: User, organization: uuid.UUID
) -> None:
    response = await client.post(
        keys_url(organization),
        json={"name": " Front desk ", "role": "staff"},
        headers=admin.headers,
    )

    assert response.status_code == 201
    created = response.json()
    assert created["name"] == "Front desk"
    assert created["role"] == "staff"
    assert created["organization_id"] == str(organization)
    assert created["created_by"] == str(admin.id)
    assert created["expires_at"] is None
    assert created["key"].startswith("sk_")
    assert len(created["key"]) > 40
    assert created["prefix"] == created["key"][:12]
    stored = owner.execute(
        "select key_hash, prefix from public.api_keys where id = %s", (created["id"],)
    ).fetchone()
    assert stored == (hash_secret(created["key"]), created["prefix"])


async def test_the_list_never_shows_a_secret(
    client: httpx.AsyncClient, admin: User, organization: uuid.UUID
) -> None:
    created = await issue_api_key(client, organization, admin, "staff")

    response = await client.get(keys_url(organization), headers=admin.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert item["id"] == created["id"]
    assert item["prefix"] == created["prefix"]
    assert "key" not in item
    assert "key_hash" not in item
    assert created["key"] not in response.text
    assert hash_secret(created["key"]) not in response.text


async def test_the_list_is_paginated(client: httpx.AsyncClient, owner: Owner, admin: User) -> None:
    organization = make_organization(owner, admin)
    ids = [(await issue_api_key(client, organization, admin))["id"] for _ in range(3)]

    first = (await client.get(keys_url(organization) + "?limit=2", headers=admin.headers)).json()
    second = (
        await client.get(
            keys_url(organization) + f"?limit=2&cursor={first['next_cursor']}",
            headers=admin.headers,
        )
    ).json()

    assert [item["id"] for item in first["items"] + second["items"]] == ids
    assert first["next_cursor"] is not None
    assert second["next_cursor"] is None
    bad_cursor = await client.get(keys_url(organization) + "?cursor=@@@", headers=admin.headers)
    assert_problem(bad_cursor, 422)


async def test_the_api_role_cannot_read_key_hashes(
    owner: Owner, admin: User, organization: uuid.UUID
) -> None:
    claims = json.dumps({"sub": str(admin.id), "role": "authenticated"})
    with owner.transaction():
        owner.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        owner.execute("set local role authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            owner.execute("select key_hash from public.api_keys")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "role": "owner"},
        {"name": "", "role": "staff"},
        {"name": "k" * 101, "role": "staff"},
        {"role": "admin"},
        {"name": "k", "role": "admin", "key": "sk_chosen-by-me"},
    ],
)
async def test_create_rejects_bad_input_and_creates_nothing(
    client: httpx.AsyncClient,
    owner: Owner,
    admin: User,
    organization: uuid.UUID,
    body: dict[str, str],
) -> None:
    assert_problem(await client.post(keys_url(organization), json=body, headers=admin.headers), 422)

    row = owner.execute(
        "select count(*) from public.api_keys where organization_id = %s", (organization,)
    ).fetchone()
    assert row == (0,)


async def test_non_admins_are_forbidden_on_a_visible_organization(
    client: httpx.AsyncClient, owner: Owner, admin: User, organization: uuid.UUID
) -> None:
    existing = await issue_api_key(client, organization, admin)
    staff = make_user(owner)
    add_member(owner, organization, staff, "staff")
    outsider = make_user(owner)

    for user in (staff, outsider):
        calls = [
            client.post(
                keys_url(organization), json={"name": "k", "role": "admin"}, headers=user.headers
            ),
            client.get(keys_url(organization), headers=user.headers),
            client.delete(f"{keys_url(organization)}/{existing['id']}", headers=user.headers),
            client.post(f"{keys_url(organization)}/{existing['id']}/rotate", headers=user.headers),
        ]
        for call in calls:
            assert_problem(await call, 403)

    row = owner.execute(
        "select count(*), bool_and(revoked_at is null and expires_at is null)"
        " from public.api_keys where organization_id = %s",
        (organization,),
    ).fetchone()
    assert row == (1, True)


async def test_an_organization_the_caller_cannot_see_is_not_found(
    client: httpx.AsyncClient, owner: Owner, admin: User
) -> None:
    hidden = make_organization(owner, make_user(owner))
    owner.execute("update public.organizations set is_active = false where id = %s", (hidden,))

    for organization in (hidden, uuid.uuid4()):
        assert_problem(await client.get(keys_url(organization), headers=admin.headers), 404)
        created = await client.post(
            keys_url(organization), json={"name": "k", "role": "admin"}, headers=admin.headers
        )
        assert_problem(created, 404)


async def test_a_super_admin_manages_any_organization_keys(
    client: httpx.AsyncClient, owner: Owner, organization: uuid.UUID
) -> None:
    operator = make_user(owner, super_admin=True)

    created = await client.post(
        keys_url(organization), json={"name": "ops", "role": "admin"}, headers=operator.headers
    )

    assert created.status_code == 201, created.text
    key = created.json()
    # The key belongs to the organization, not to the operator, and acts as its admin.
    row = owner.execute(
        "select organization_id, role from public.api_keys where id = %s", (key["id"],)
    ).fetchone()
    assert row == (organization, "admin")
    listed = await client.get(keys_url(organization), headers={"apikey": key["key"]})
    assert listed.status_code == 200
    assert key["id"] in [item["id"] for item in listed.json()["items"]]
    revoked = await client.delete(f"{keys_url(organization)}/{key['id']}", headers=operator.headers)
    assert revoked.status_code == 204
    assert_problem(await client.get(keys_url(organization), headers={"apikey": key["key"]}), 401)


async def test_anonymous_callers_are_unauthorized(
    client: httpx.AsyncClient, organization: uuid.UUID
) -> None:
    assert_problem(await client.get(keys_url(organization)), 401)
    assert_problem(
        await client.post(keys_url(organization), json={"name": "k", "role": "admin"}), 401
    )


async def test_revoked_key_answers_401_and_leaves_the_list(
    client: httpx.AsyncClient, admin: User, organization: uuid.UUID
) -> None:
    created = await issue_api_key(client, organization, admin)
    assert (
        await client.get(keys_url(organization), headers={"apikey": created["key"]})
    ).status_code == 200
    services = f"/v1/organizations/{organization}/services"
    assert (await client.get(services, headers={"apikey": created["key"]})).status_code == 200

    response = await client.delete(
        f"{keys_url(organization)}/{created['id']}", headers=admin.headers
    )

    assert response.status_code == 204
    assert_problem(
        await client.get(keys_url(organization), headers={"apikey": created["key"]}), 401
    )
    # The public list, read in one round trip, refuses the revoked key too.
    assert_problem(await client.get(services, headers={"apikey": created["key"]}), 401)
    listed = (await client.get(keys_url(organization), headers=admin.headers)).json()
    assert created["id"] not in [item["id"] for item in listed["items"]]
    again = await client.delete(f"{keys_url(organization)}/{created['id']}", headers=admin.headers)
    assert_problem(again, 404)


async def test_keys_of_another_organization_are_not_found(
    client: httpx.AsyncClient, owner: Owner, admin: User, organization: uuid.UUID
) -> None:
    other = make_organization(owner, admin, name="Second site")
    foreign = await issue_api_key(client, other, admin)

    assert_problem(
        await client.delete(f"{keys_url(organization)}/{foreign['id']}", headers=admin.headers), 404
    )
    assert_problem(
        await client.post(
            f"{keys_url(organization)}/{foreign['id']}/rotate", headers=admin.headers
        ),
        404,
    )
    assert_problem(
        await client.delete(f"{keys_url(organization)}/{uuid.uuid4()}", headers=admin.headers), 404
    )
    still_live = await client.get(keys_url(other), headers={"apikey": foreign["key"]})
    assert still_live.status_code == 200


async def test_rotation_issues_a_new_key_and_keeps_the_old_one_for_the_grace_period(
    client: httpx.AsyncClient, owner: Owner, admin: User, organization: uuid.UUID
) -> None:
    old = await issue_api_key(client, organization, admin, "admin")

    response = await client.post(
        f"{keys_url(organization)}/{old['id']}/rotate", headers=admin.headers
    )

    assert response.status_code == 201
    new = response.json()
    assert (new["name"], new["role"]) == (old["name"], old["role"])
    assert new["id"] != old["id"]
    assert new["key"] != old["key"]
    assert new["prefix"] == new["key"][:12]
    row = owner.execute(
        "select expires_at from public.api_keys where id = %s", (old["id"],)
    ).fetchone()
    assert row is not None
    # The default grace period is a day.
    assert abs(row[0] - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=1)

    for key in (old["key"], new["key"]):
        assert (
            await client.get(keys_url(organization), headers={"apikey": key})
        ).status_code == 200
    again = await client.post(f"{keys_url(organization)}/{old['id']}/rotate", headers=admin.headers)
    assert_problem(again, 409)

    expire_key(owner, old["id"])
    assert_problem(await client.get(keys_url(organization), headers={"apikey": old["key"]}), 401)
    assert (
        await client.get(keys_url(organization), headers={"apikey": new["key"]})
    ).status_code == 200
    listed = (await client.get(keys_url(organization), headers=admin.headers)).json()
    assert [item["id"] for item in listed["items"]] == [new["id"]]


# ---------------------------------------------------------------------------------------
# Authenticating with a key.
# ---------------------------------------------------------------------------------------
async def test_an_admin_key_manages_keys_and_a_staff_key_cannot(
    client: httpx.AsyncClient, admin: User, organization: uuid.UUID
) -> None:
    admin_key = (await issue_api_key(client, organization, admin, "admin"))["key"]
    staff_key = (await issue_api_key(client, organization, admin, "staff"))["key"]

    listed = await client.get(keys_url(organization), headers={"apikey": admin_key})
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 2
    assert_problem(await client.get(keys_url(organization), headers={"apikey": staff_key}), 403)

    made = await client.post(
        keys_url(organization),
        json={"name": "by key", "role": "staff"},
        headers={"X-API-Key": admin_key},
    )
    assert made.status_code == 201
    assert made.json()["created_by"] is None


async def test_a_key_acts_only_for_its_own_organization(
    client: httpx.AsyncClient, owner: Owner, admin: User, organization: uuid.UUID
) -> None:
    key = (await issue_api_key(client, organization, admin, "admin"))["key"]
    elsewhere = make_organization(owner, admin, name="Other org of the same admin")

    assert_problem(await client.get(keys_url(elsewhere), headers={"apikey": key}), 403)


@pytest.mark.parametrize("header", ["apikey", "X-API-Key", "x-api-key"])
async def test_both_key_headers_are_accepted(
    client: httpx.AsyncClient, admin: User, organization: uuid.UUID, header: str
) -> None:
    key = (await issue_api_key(client, organization, admin))["key"]

    assert (await client.get(keys_url(organization), headers={header: key})).status_code == 200


@pytest.mark.parametrize("key", ["sk_not-a-real-key", "garbage", "sk_", "Bearer sk_x"])
@pytest.mark.parametrize("header", ["apikey", "X-API-Key"])
async def test_unknown_keys_are_unauthorized(
    client: httpx.AsyncClient, organization: uuid.UUID, header: str, key: str
) -> None:
    assert_problem(await client.get(keys_url(organization), headers={header: key}), 401)
