from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from slotease.kit.pagination import Page, encode_cursor
from slotease.services.schemas import Service
from tests.factories import Owner, User, make_organization, make_service, make_user
from tests.organizations.arrange import two_tenants
from tests.organizations.checks import assert_invalid, assert_problem

pytestmark = pytest.mark.anyio

WEEK = [
    {"weekday": 0, "start": "09:00", "end": "12:00"},
    {"weekday": 0, "start": "13:00", "end": "17:30"},
    {"weekday": 5, "start": "08:15", "end": "11:45"},
]


def count_rows(owner: Owner, table: str, org_id: uuid.UUID) -> int:
    row = owner.execute(
        f"select count(*) from public.{table} where organization_id = %s", (org_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def hours_of(owner: Owner, service_id: uuid.UUID | str) -> list[tuple[int, str, str]]:
    rows = owner.execute(
        "select weekday, to_char(start_time, 'HH24:MI'), to_char(end_time, 'HH24:MI')"
        " from public.service_working_hours where service_id = %s order by weekday, start_time",
        (service_id,),
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


async def create(
    client: httpx.AsyncClient, org_id: uuid.UUID, user: User, **fields: Any
) -> httpx.Response:
    payload = {"name": "Consultation", "duration_minutes": 20, **fields}
    return await client.post(
        f"/v1/organizations/{org_id}/services", json=payload, headers=user.headers
    )


async def test_create_applies_the_defaults(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await create(client, org_id, admin, working_hours=WEEK)
    assert response.status_code == 201, response.text
    body = response.json()
    service_id = body.pop("id")
    assert body == {
        "organization_id": str(org_id),
        "name": "Consultation",
        "duration_minutes": 20,
        "capacity": 1,
        "buffer_minutes": 0,
        "min_notice_minutes": 0,
        "max_advance_days": 60,
        "slot_interval_minutes": 20,
        "working_hours": WEEK,
        "price": None,
        "currency": None,
        "is_active": True,
    }
    assert hours_of(owner, service_id) == [
        (0, "09:00", "12:00"),
        (0, "13:00", "17:30"),
        (5, "08:15", "11:45"),
    ]


async def test_create_with_every_field(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await create(
        client,
        org_id,
        admin,
        name="Blood test",
        duration_minutes=10,
        capacity=4,
        buffer_minutes=5,
        min_notice_minutes=120,
        max_advance_days=30,
        slot_interval_minutes=15,
        working_hours=[
            {"weekday": 2, "start": "08:00", "end": "10:00"},
            {"weekday": 2, "start": "10:00", "end": "12:00"},
        ],
        price=25.5,
        currency="EUR",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["capacity"] == 4
    assert body["slot_interval_minutes"] == 15
    assert body["price"] == "25.50"
    assert body["currency"] == "EUR"
    # Touching intervals do not overlap.
    assert len(body["working_hours"]) == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"working_hours": [{"weekday": 7, "start": "09:00", "end": "10:00"}]}, "weekday"),
        ({"working_hours": [{"weekday": -1, "start": "09:00", "end": "10:00"}]}, "weekday"),
        ({"working_hours": [{"weekday": 1, "start": "10:00", "end": "10:00"}]}, "working_hours"),
        ({"working_hours": [{"weekday": 1, "start": "11:00", "end": "10:00"}]}, "working_hours"),
        ({"working_hours": [{"weekday": 1, "start": "9:00", "end": "10:00"}]}, "start"),
        ({"working_hours": [{"weekday": 1, "start": "09:00", "end": "24:00"}]}, "end"),
        (
            {
                "working_hours": [
                    {"weekday": 1, "start": "09:00", "end": "12:00"},
                    {"weekday": 1, "start": "11:59", "end": "14:00"},
                ]
            },
            "working_hours",
        ),
        ({"price": 10}, "body"),
        ({"price": -1, "currency": "EUR"}, "price"),
        ({"price": 1.234, "currency": "EUR"}, "price"),
        ({"price": 10, "currency": "eur"}, "currency"),
        ({"price": 10, "currency": "EURO"}, "currency"),
        ({"duration_minutes": 4}, "duration_minutes"),
        ({"duration_minutes": 1441}, "duration_minutes"),
        ({"capacity": 0}, "capacity"),
        ({"buffer_minutes": -5}, "buffer_minutes"),
        ({"max_advance_days": 0}, "max_advance_days"),
        ({"min_notice_minutes": 525601}, "min_notice_minutes"),
        ({"slot_interval_minutes": 2}, "slot_interval_minutes"),
        ({"name": " "}, "name"),
        ({"description": "not in the contract"}, "description"),
    ],
)
async def test_invalid_services_are_422_and_create_nothing(
    client: httpx.AsyncClient, owner: Owner, fields: dict[str, Any], field: str
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    response = await create(client, org_id, admin, **fields)
    assert_invalid(response, field)
    assert count_rows(owner, "services", org_id) == 0


async def test_only_admins_of_the_organization_create_services(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    admin_a, staff_b, org_b = tenants.admin_a, tenants.staff_b, tenants.org_b

    for user in (admin_a, staff_b):
        assert_problem(await create(client, org_b, user), 403)
    anonymous = await client.post(
        f"/v1/organizations/{org_b}/services", json={"name": "X", "duration_minutes": 20}
    )
    assert_problem(anonymous, 401)
    assert_problem(await create(client, uuid.uuid4(), admin_a), 404)
    assert count_rows(owner, "services", org_b) == 0


async def test_anyone_lists_active_services_with_their_hours(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    org_id = make_organization(owner)
    dental = make_service(owner, org_id, name="Dental", hours=((1, "08:00", "12:00"),))
    xray = make_service(owner, org_id, name="X-ray", hours=())
    retired = make_service(owner, org_id, name="Retired")
    owner.execute("update public.services set is_active = false where id = %s", (retired,))

    response = await client.get(f"/v1/organizations/{org_id}/services")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [item["id"] for item in body["items"]] == [str(dental), str(xray)]
    assert body["items"][0]["working_hours"] == [{"weekday": 1, "start": "08:00", "end": "12:00"}]
    assert body["items"][1]["working_hours"] == []


async def test_services_page_through_without_gaps(client: httpx.AsyncClient, owner: Owner) -> None:
    org_id = make_organization(owner)
    names = {
        str(make_service(owner, org_id, name=f"Service {i % 4}")): f"Service {i % 4}"
        for i in range(9)
    }
    expected = list(names)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(f"/v1/organizations/{org_id}/services", params=params)
        assert response.status_code == 200
        assert len(response.json()["items"]) <= 2
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))
    assert [names[s] for s in seen] == sorted(names[s] for s in seen)


async def test_services_of_unknown_or_invisible_organizations_are_404(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    org_id = make_organization(owner)
    make_service(owner, org_id)
    assert_problem(await client.get(f"/v1/organizations/{uuid.uuid4()}/services"), 404)
    owner.execute("update public.organizations set is_active = false where id = %s", (org_id,))
    assert_problem(await client.get(f"/v1/organizations/{org_id}/services"), 404)
    assert_invalid(
        await client.get(f"/v1/organizations/{uuid.uuid4()}/services", params={"limit": 201}),
        "limit",
    )
    assert_problem(
        await client.get(f"/v1/organizations/{uuid.uuid4()}/services", params={"cursor": "bogus"}),
        422,
    )


async def test_anyone_reads_an_active_service(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    service_id = make_service(owner, org_id, hours=((4, "14:00", "18:00"),))
    response = await client.get(f"/v1/services/{service_id}")
    assert response.status_code == 200
    assert response.json()["working_hours"] == [{"weekday": 4, "start": "14:00", "end": "18:00"}]

    owner.execute("update public.services set is_active = false where id = %s", (service_id,))
    assert_problem(await client.get(f"/v1/services/{service_id}"), 404)
    assert_problem(await client.get(f"/v1/services/{uuid.uuid4()}"), 404)
    own_view = await client.get(f"/v1/services/{service_id}", headers=admin.headers)
    assert own_view.status_code == 200
    assert own_view.json()["is_active"] is False


async def test_patch_changes_fields_and_replaces_the_week(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    service_id = make_service(owner, org_id)
    assert len(hours_of(owner, service_id)) == 5

    response = await client.patch(
        f"/v1/services/{service_id}",
        json={
            "name": "Long consultation",
            "duration_minutes": 45,
            "capacity": 2,
            "price": "40",
            "currency": "USD",
            "working_hours": [{"weekday": 6, "start": "10:00", "end": "14:00"}],
        },
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["duration_minutes"], body["capacity"]) == (
        "Long consultation",
        45,
        2,
    )
    assert (body["price"], body["currency"]) == ("40.00", "USD")
    assert body["slot_interval_minutes"] == 30
    assert body["working_hours"] == [{"weekday": 6, "start": "10:00", "end": "14:00"}]
    assert hours_of(owner, service_id) == [(6, "10:00", "14:00")]

    kept = await client.patch(
        f"/v1/services/{service_id}", json={"capacity": 3}, headers=admin.headers
    )
    assert kept.json()["working_hours"] == [{"weekday": 6, "start": "10:00", "end": "14:00"}]
    cleared = await client.patch(
        f"/v1/services/{service_id}",
        json={"working_hours": [], "price": None, "currency": None},
        headers=admin.headers,
    )
    assert cleared.status_code == 200
    assert cleared.json()["working_hours"] == []
    assert cleared.json()["price"] is None
    assert hours_of(owner, service_id) == []


async def test_deactivated_services_leave_the_public_list(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    service_id = make_service(owner, org_id)
    response = await client.patch(
        f"/v1/services/{service_id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    listing = await client.get(f"/v1/organizations/{org_id}/services")
    assert listing.json()["items"] == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"price": 12}, "body"),
        ({"currency": None}, "body"),
        ({"name": None}, "body"),
        ({"working_hours": None}, "body"),
        ({"capacity": 0}, "capacity"),
        ({"working_hours": [{"weekday": 0, "start": "12:00", "end": "11:00"}]}, "working_hours"),
        ({"organization_id": str(uuid.uuid4())}, "organization_id"),
    ],
)
async def test_invalid_patches_are_422_and_change_nothing(
    client: httpx.AsyncClient, owner: Owner, payload: dict[str, Any], field: str
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    service_id = make_service(owner, org_id)
    response = await client.patch(f"/v1/services/{service_id}", json=payload, headers=admin.headers)
    assert_invalid(response, field)
    row = owner.execute(
        "select name, capacity, organization_id from public.services where id = %s", (service_id,)
    ).fetchone()
    assert row == ("Consultation", 1, org_id)
    assert len(hours_of(owner, service_id)) == 5


async def test_patch_is_403_for_other_admins_and_404_when_invisible(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    admin_a = tenants.admin_a
    service_b = make_service(owner, tenants.org_b)

    response = await client.patch(
        f"/v1/services/{service_b}",
        json={"capacity": 99, "working_hours": []},
        headers=admin_a.headers,
    )
    assert_problem(response, 403)
    assert_problem(await client.patch(f"/v1/services/{service_b}", json={"capacity": 99}), 401)
    owner.execute("update public.services set is_active = false where id = %s", (service_b,))
    response = await client.patch(
        f"/v1/services/{service_b}", json={"capacity": 99}, headers=admin_a.headers
    )
    assert_problem(response, 404)
    row = owner.execute(
        "select capacity from public.services where id = %s", (service_b,)
    ).fetchone()
    assert row == (1,)
    assert len(hours_of(owner, service_b)) == 5


# ---------------------------------------------------------------------------------------
# Closures
# ---------------------------------------------------------------------------------------
CLOSURE = {
    "starts_at": "2026-12-24T12:00:00+01:00",
    "ends_at": "2026-12-26T00:00:00+01:00",
    "reason": "Christmas",
}


async def test_an_admin_adds_lists_and_removes_closures(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    service_id = make_service(owner, org_id)

    response = await client.post(
        f"/v1/services/{service_id}/closures", json=CLOSURE, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    closure = response.json()
    assert set(closure) == {"id", "service_id", "starts_at", "ends_at", "reason"}
    assert closure["service_id"] == str(service_id)
    assert closure["reason"] == "Christmas"

    listing = await client.get(f"/v1/services/{service_id}/closures")
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()["items"]] == [closure["id"]]

    removed = await client.delete(
        f"/v1/services/{service_id}/closures/{closure['id']}", headers=admin.headers
    )
    assert removed.status_code == 204
    assert count_rows(owner, "service_closures", org_id) == 0
    again = await client.delete(
        f"/v1/services/{service_id}/closures/{closure['id']}", headers=admin.headers
    )
    assert_problem(again, 404)


async def test_closures_filter_by_days_of_the_organization(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin, tz="Europe/Paris")
    service_id = make_service(owner, org_id)
    periods = [
        ("2026-03-01T08:00:00+01:00", "2026-03-01T12:00:00+01:00"),
        # 23:30 UTC on March 9 is already March 10 in Paris.
        ("2026-03-09T23:30:00+00:00", "2026-03-10T02:00:00+00:00"),
        ("2026-03-20T08:00:00+01:00", "2026-03-22T12:00:00+01:00"),
    ]
    ids = []
    for starts_at, ends_at in periods:
        response = await client.post(
            f"/v1/services/{service_id}/closures",
            json={"starts_at": starts_at, "ends_at": ends_at},
            headers=admin.headers,
        )
        assert response.status_code == 201
        ids.append(response.json()["id"])

    async def listed(**params: str) -> list[str]:
        response = await client.get(f"/v1/services/{service_id}/closures", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await listed() == ids
    assert await listed(**{"from": "2026-03-10", "to": "2026-03-10"}) == [ids[1]]
    assert await listed(**{"from": "2026-03-02", "to": "2026-03-09"}) == []
    assert await listed(**{"from": "2026-03-21"}) == [ids[2]]
    assert await listed(to="2026-03-01") == [ids[0]]
    assert_invalid(
        await client.get(
            f"/v1/services/{service_id}/closures", params={"from": "2026-03-10", "to": "2026-03-01"}
        ),
        "query",
    )
    assert_invalid(
        await client.get(f"/v1/services/{service_id}/closures", params={"from": "March"}), "from"
    )

    pages: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"/v1/services/{service_id}/closures", params=params)
        pages += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == ids


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"starts_at": "2026-12-24T12:00:00", "ends_at": "2026-12-25T12:00:00+00:00"}, "starts_at"),
        ({"starts_at": "2026-12-24T12:00:00Z", "ends_at": "2026-12-25T12:00:00"}, "ends_at"),
        ({"starts_at": "2026-12-25T12:00:00Z", "ends_at": "2026-12-25T12:00:00Z"}, "body"),
        ({"starts_at": "2026-12-26T12:00:00Z", "ends_at": "2026-12-25T12:00:00Z"}, "body"),
        ({"starts_at": "2026-12-24T12:00:00Z"}, "ends_at"),
        ({**CLOSURE, "reason": "r" * 501}, "reason"),
    ],
)
async def test_invalid_closures_are_422(
    client: httpx.AsyncClient, owner: Owner, payload: dict[str, Any], field: str
) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    service_id = make_service(owner, org_id)
    response = await client.post(
        f"/v1/services/{service_id}/closures", json=payload, headers=admin.headers
    )
    assert_invalid(response, field)
    assert count_rows(owner, "service_closures", org_id) == 0


async def test_closures_are_admin_only_and_tenant_bound(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    tenants = two_tenants(owner)
    admin_a, admin_b, staff_b = tenants.admin_a, tenants.admin_b, tenants.staff_b
    org_a, org_b = tenants.org_a, tenants.org_b
    service_a = make_service(owner, org_a)
    service_b = make_service(owner, org_b)

    for user in (admin_a, staff_b):
        response = await client.post(
            f"/v1/services/{service_b}/closures", json=CLOSURE, headers=user.headers
        )
        assert_problem(response, 403)
    assert_problem(await client.post(f"/v1/services/{service_b}/closures", json=CLOSURE), 401)
    unknown = await client.post(
        f"/v1/services/{uuid.uuid4()}/closures", json=CLOSURE, headers=admin_a.headers
    )
    assert_problem(unknown, 404)
    assert count_rows(owner, "service_closures", org_b) == 0

    created = await client.post(
        f"/v1/services/{service_b}/closures", json=CLOSURE, headers=admin_b.headers
    )
    closure_id = created.json()["id"]
    for path, user in [
        (f"/v1/services/{service_b}/closures/{closure_id}", admin_a),
        (f"/v1/services/{service_b}/closures/{closure_id}", staff_b),
    ]:
        assert_problem(await client.delete(path, headers=user.headers), 403)
    # Through a service of their own, admin A still cannot reach B's closure.
    response = await client.delete(
        f"/v1/services/{service_a}/closures/{closure_id}", headers=admin_a.headers
    )
    assert_problem(response, 404)
    assert count_rows(owner, "service_closures", org_b) == 1
    assert_problem(await client.get(f"/v1/services/{uuid.uuid4()}/closures"), 404)


async def test_the_public_list_is_the_bytes_pydantic_would_write(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    """The list's JSON is built by PostgreSQL: it must stay byte for byte what FastAPI writes
    for `Page[Service]` (fields, order, formats, escaping, the cursor)."""
    org_id = make_organization(owner)
    names = ['Zahn "quote" \\ slash', "Éléphant 🦷 ü", "a\ttab\u0001ctl", "Plain", "Ärzte/Dr"]
    ids = [make_service(owner, org_id, name=name) for name in names]
    owner.execute(
        "update public.services set price = 40, currency = 'EUR', buffer_minutes = 5 where id = %s",
        (ids[0],),
    )
    owner.execute("update public.services set price = 12.5 where id = %s", (ids[1],))
    make_service(owner, org_id, name="No hours", hours=())
    adapter = TypeAdapter(Page[Service])
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/organizations/{org_id}/services", params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        listed = response.json()
        items = []
        for item in listed["items"]:
            one = await client.get(f"/v1/services/{item['id']}")
            items.append(Service.model_validate_json(one.content))
        expected_cursor = (
            encode_cursor([items[-1].name, items[-1].id]) if listed["next_cursor"] else None
        )
        expected = adapter.dump_json(Page(items=items, next_cursor=expected_cursor))
        assert response.content == expected
        pages += 1
        cursor = listed["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    empty = make_organization(owner)
    response = await client.get(f"/v1/organizations/{empty}/services")
    assert response.content == adapter.dump_json(Page[Service](items=[], next_cursor=None))
