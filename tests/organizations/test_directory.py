"""The public directory: full-text, kind, nearest-first and radius search, keyset pages."""

from __future__ import annotations

import math
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from slotease.kit.pagination import encode_cursor
from tests.factories import Owner, make_user
from tests.organizations.checks import assert_invalid, assert_problem

pytestmark = pytest.mark.anyio

PARIS = (48.8566, 2.3522)
LYON = (45.7640, 4.8357)
BERLIN = (52.5200, 13.4050)
LONDON = (51.5074, -0.1278)
MADRID = (40.4168, -3.7038)


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The spherical law of cosines: an independent check of the server's haversine."""
    lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
    cos_angle = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(
        lng2 - lng1
    )
    return 6371.0088 * math.acos(min(1.0, cos_angle))


def tag() -> str:
    """A word found only in this test's organizations, so tests of one module stay apart."""
    return "t" + uuid.uuid4().hex[:12]


def insert_org(
    owner: Owner,
    name: str,
    *,
    kind: str = "clinic",
    at: tuple[float, float] | None = None,
    address: str | None = None,
    active: bool = True,
) -> str:
    row = owner.execute(
        "insert into public.organizations (name, slug, kind, timezone, address, location,"
        " is_active) values (%s, %s, %s, 'Europe/Paris', %s, point(%s, %s), %s) returning id",
        (
            name,
            f"org-{uuid.uuid4().hex[:12]}",
            kind,
            address,
            at[1] if at else None,
            at[0] if at else None,
            active,
        ),
    ).fetchone()
    assert row is not None
    return str(row[0])


async def search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/organizations", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def all_pages(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = await search(client, **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= params["limit"]
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


async def test_nearest_first_with_true_distances(client: httpx.AsyncClient, owner: Owner) -> None:
    word = tag()
    berlin = insert_org(owner, f"Berlin {word}", at=BERLIN)
    paris = insert_org(owner, f"Paris {word}", at=PARIS)
    lyon = insert_org(owner, f"Lyon {word}", at=LYON)
    insert_org(owner, f"Nowhere {word}")

    body = await search(client, q=word, near=f"{PARIS[0]},{PARIS[1]}")
    assert [item["id"] for item in body["items"]] == [paris, lyon, berlin]
    distances = [item["distance_km"] for item in body["items"]]
    assert distances[0] == pytest.approx(0, abs=0.001)
    # Known great-circle distances, and the same computed by another formula.
    assert distances[1] == pytest.approx(391.5, abs=1)
    assert distances[2] == pytest.approx(878.0, abs=1)
    for item, city in zip(body["items"], (PARIS, LYON, BERLIN), strict=True):
        assert item["distance_km"] == pytest.approx(great_circle_km(PARIS, city), abs=1)

    from_berlin = await search(client, q=word, near=f"{BERLIN[0]},{BERLIN[1]}")
    assert [item["id"] for item in from_berlin["items"]] == [berlin, paris, lyon]


async def test_without_near_there_is_no_distance(client: httpx.AsyncClient, owner: Owner) -> None:
    word = tag()
    insert_org(owner, f"Paris {word}", at=PARIS)
    body = await search(client, q=word)
    assert body["items"][0]["distance_km"] is None
    assert body["items"][0]["location"] == {"lat": PARIS[0], "lng": PARIS[1]}


async def test_radius_keeps_only_what_is_inside(client: httpx.AsyncClient, owner: Owner) -> None:
    word = tag()
    ids = {
        city: insert_org(owner, f"{city} {word}", at=coords)
        for city, coords in {
            "paris": PARIS,
            "lyon": LYON,
            "london": LONDON,
            "berlin": BERLIN,
            "madrid": MADRID,
        }.items()
    }
    near_paris = f"{PARIS[0]},{PARIS[1]}"

    within_400 = await search(client, q=word, near=near_paris, radius_km=400)
    assert [item["id"] for item in within_400["items"]] == [
        ids["paris"],
        ids["london"],
        ids["lyon"],
    ]
    # Lyon is 391.5 km away: a radius just under it leaves it out.
    within_390 = await search(client, q=word, near=near_paris, radius_km=390)
    assert [item["id"] for item in within_390["items"]] == [ids["paris"], ids["london"]]
    within_1100 = await search(client, q=word, near=near_paris, radius_km=1100)
    assert [item["id"] for item in within_1100["items"]] == [
        ids["paris"],
        ids["london"],
        ids["lyon"],
        ids["berlin"],
        ids["madrid"],
    ]
    assert all(item["distance_km"] <= 1100 for item in within_1100["items"])


async def test_radius_across_the_antimeridian_and_near_a_pole(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    word = tag()
    east = insert_org(owner, f"Taveuni {word}", at=(-16.9, 179.9))
    west = insert_org(owner, f"Rabi {word}", at=(-16.9, -179.9))
    far = insert_org(owner, f"Suva {word}", at=(-18.1, 170.0))
    body = await search(client, q=word, near="-16.9,179.95", radius_km=50)
    assert sorted(item["id"] for item in body["items"]) == sorted([east, west])
    assert far not in [item["id"] for item in body["items"]]

    polar = tag()
    station = insert_org(owner, f"Station {polar}", at=(89.95, 170.0))
    camp = insert_org(owner, f"Camp {polar}", at=(89.5, -10.0))
    body = await search(client, q=polar, near="89.9,0", radius_km=30)
    assert [item["id"] for item in body["items"]] == [station]
    assert body["items"][0]["distance_km"] == pytest.approx(
        great_circle_km((89.9, 0), (89.95, 170.0)), abs=0.01
    )
    wider = await search(client, q=polar, near="89.9,0", radius_km=60)
    assert [item["id"] for item in wider["items"]] == [station, camp]


async def test_text_search_matches_words_prefixes_and_addresses(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    word = tag()
    central = insert_org(owner, f"Central Hospital {word}", kind="hospital")
    city_bank = insert_org(owner, f"City Bank {word}", kind="bank", address="12 Central Square")
    clinic = insert_org(owner, f"Riverside Clinic {word}", kind="clinic")

    async def found(q: str, **params: Any) -> list[str]:
        body = await search(client, q=f"{word} {q}".strip(), **params)
        return sorted(item["id"] for item in body["items"])

    assert await found("") == sorted([central, city_bank, clinic])
    assert await found("cent") == sorted([central, city_bank])
    assert await found("CENTRAL") == sorted([central, city_bank])
    assert await found("central hosp") == [central]
    assert await found("central -hospital") == [city_bank]
    assert await found('"city bank"') == [city_bank]
    assert await found('"bank city"') == []
    either = await search(client, q=f"{word} riverside or {word} hospital")
    assert sorted(item["id"] for item in either["items"]) == sorted([central, clinic])
    assert await found("squ") == [city_bank]
    assert await found("zzz") == []
    assert await found("!!! & | :*") == sorted([central, city_bank, clinic])
    assert await found("cent", kind="bank") == [city_bank]


async def test_kind_filter(client: httpx.AsyncClient, owner: Owner) -> None:
    word = tag()
    bank = insert_org(owner, f"Bank {word}", kind="bank")
    insert_org(owner, f"Salon {word}", kind="salon")
    body = await search(client, q=word, kind="bank")
    assert [item["id"] for item in body["items"]] == [bank]
    assert_invalid(await client.get("/v1/organizations", params={"kind": "pub"}), "kind")


async def test_inactive_organizations_are_hidden_from_the_public(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    word = tag()
    visible = insert_org(owner, f"Open {word}", at=PARIS)
    insert_org(owner, f"Closed {word}", at=PARIS, active=False)
    body = await search(client, q=word)
    assert [item["id"] for item in body["items"]] == [visible]
    body = await search(client, q=word, near="48.85,2.35")
    assert [item["id"] for item in body["items"]] == [visible]


async def test_pages_by_name_have_no_duplicates_or_gaps(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    word = tag()
    # Repeated names make the id the tie-breaker of the keyset.
    expected = {insert_org(owner, f"Org {i % 5} {word}") for i in range(23)}
    items = await all_pages(client, q=word, limit=4)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == 23
    assert set(ids) == expected
    keys = [(item["name"], item["id"]) for item in items]
    assert keys == sorted(keys)


async def test_pages_by_distance_have_no_duplicates_or_gaps(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    word = tag()
    # Several organizations share each spot, so distances tie across page boundaries.
    spots = [PARIS, LYON, BERLIN, LONDON]
    expected = {insert_org(owner, f"Spot {i} {word}", at=spots[i % 4]) for i in range(18)}
    items = await all_pages(client, q=word, near=f"{PARIS[0]},{PARIS[1]}", limit=4)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == 18
    assert set(ids) == expected
    keys = [(item["distance_km"], item["id"]) for item in items]
    assert keys == sorted(keys)

    in_radius = await all_pages(
        client, q=word, near=f"{PARIS[0]},{PARIS[1]}", radius_km=400, limit=3
    )
    assert len(in_radius) == len({item["id"] for item in in_radius}) == 14


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"radius_km": 10}, "query"),
        ({"near": "48.8"}, "query"),
        ({"near": "abc,def"}, "query"),
        ({"near": "91,0"}, "query"),
        ({"near": "0,181"}, "query"),
        ({"near": "nan,0"}, "query"),
        ({"near": "1,2", "radius_km": 0}, "radius_km"),
        ({"near": "1,2", "radius_km": -5}, "radius_km"),
        ({"q": "x" * 201}, "q"),
    ],
)
async def test_invalid_queries_are_422(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    assert_invalid(await client.get("/v1/organizations", params=params), field)


@pytest.mark.parametrize(
    ("params", "cursor"),
    [
        ({}, "not a cursor"),
        ({}, encode_cursor(["name", "not-a-uuid"])),
        ({}, encode_cursor([12.5, str(uuid.uuid4())])),
        ({"near": "1,2"}, encode_cursor(["name", str(uuid.uuid4())])),
        ({"near": "1,2"}, encode_cursor([True, str(uuid.uuid4())])),
        ({}, encode_cursor(["a\u0000b", str(uuid.uuid4())])),
    ],
)
async def test_forged_cursors_are_422(
    client: httpx.AsyncClient, params: dict[str, Any], cursor: str
) -> None:
    response = await client.get("/v1/organizations", params={**params, "cursor": cursor})
    assert_problem(response, 422)


async def test_the_directory_lists_active_organizations_even_to_their_members(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    word = tag()
    admin = make_user(owner)
    dormant = insert_org(owner, f"Dormant {word}", at=PARIS, active=False)
    owner.execute(
        "insert into public.organization_members (organization_id, user_id, role)"
        " values (%s, %s, 'admin')",
        (dormant, admin.id),
    )
    searches: list[dict[str, Any]] = [
        {"q": word},
        {"q": word, "near": "48.85,2.35", "radius_km": 10},
    ]
    for params in searches:
        response = await client.get("/v1/organizations", params=params, headers=admin.headers)
        assert response.json()["items"] == []
    own_view = await client.get(f"/v1/organizations/{dormant}", headers=admin.headers)
    assert own_view.status_code == 200


def index_scans(owner: Owner, statement: str, *, role: str) -> dict[str, int]:
    """Index scans of the organizations' search and location indexes made by `statement` as
    `role`, over a directory large enough for those indexes to be the cheapest plan; all of
    it rolled back."""
    counts = (
        "select c.relname, pg_stat_get_xact_numscans(c.oid) from pg_class c"
        " where c.relname in ('organizations_search_idx', 'organizations_location_idx')"
    )
    scans: dict[str, int] = {}
    with owner.transaction():
        owner.execute(
            "insert into public.organizations (name, slug, kind, timezone, location)"
            " select 'Seeded ' || g, 'seeded-' || g, 'clinic', 'UTC',"
            " point(g % 360 - 180, g % 180 - 90) from generate_series(1, 3000) g"
        )
        owner.execute("analyze public.organizations")
        # The counters hold what this session has not yet reported, so measure a difference.
        before = dict(owner.execute(counts).fetchall())
        owner.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        owner.execute(statement)
        owner.execute("reset role")
        scans = {str(name): int(n) - int(before[name]) for name, n in owner.execute(counts)}
        raise psycopg.Rollback()
    return scans


SEARCH_AND_AREA = (
    "select id from public.organizations where search @@ to_tsquery('simple', 'cent:*')"
    " union all select id from public.organizations"
    " where location <@ box(point(0, 0), point(1, 1))"
)


def test_rls_keeps_anon_from_the_search_indexes(owner: Owner) -> None:
    """Why app.directory_candidates exists: `@@` and `<@` are not leakproof, so under RLS the
    very same statement that uses both indexes for the owner scans the table."""
    as_owner = index_scans(owner, SEARCH_AND_AREA, role="postgres")
    assert as_owner["organizations_search_idx"] > 0
    assert as_owner["organizations_location_idx"] > 0
    as_anon = index_scans(owner, SEARCH_AND_AREA, role="anon")
    assert as_anon == {"organizations_search_idx": 0, "organizations_location_idx": 0}


def test_directory_candidates_use_the_gin_and_gist_indexes(owner: Owner) -> None:
    scans = index_scans(
        owner,
        "select app.directory_candidates(to_tsquery('simple', 'cent:*'), null)"
        " union all select app.directory_candidates(null, box(point(0, 0), point(1, 1)))",
        role="anon",
    )
    assert scans["organizations_search_idx"] > 0
    assert scans["organizations_location_idx"] > 0
