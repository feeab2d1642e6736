"""Bad input through HTTP: NUL characters, ids of rows that do not exist, values out of range.
Each is a 4xx problem and changes nothing, never a server error."""

from __future__ import annotations

import uuid
from typing import Any, LiteralString

import httpx
import psycopg
import pytest
from pydantic import BaseModel

from slotease.config import Settings
from tests.appointments.arrange import insert_as_owner, make_clinic, soon
from tests.auth.support import assert_problem
from tests.factories import make_organization, make_service, make_user
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

Owner = psycopg.Connection[Any]


def _events_of(owner: Owner, user_id: uuid.UUID) -> int:
    row = owner.execute(
        "select count(*) from public.analytics_events where user_id = %s", (user_id,)
    ).fetchone()
    assert row is not None
    count: int = row[0]
    return count


def _locations(body: dict[str, Any]) -> list[list[str]]:
    return [error["loc"] for error in body["errors"]]


async def test_nul_in_a_json_field_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    grant = {"grant_type": "password", "email": "a\u0000@example.com", "password": "x" * 10}
    answer = await client.post("/v1/auth/token", json=grant)
    body = assert_problem(answer, 422)
    assert _locations(body) == [["body", "email"]]


async def test_nul_in_a_nested_json_field_is_a_422(client: httpx.AsyncClient, owner: Owner) -> None:
    user = make_user(owner)
    event = {"event_type": "page.view", "properties": {"note": ["ok", "bad\u0000"]}}
    answer = await client.post("/v1/analytics/event", json=event, headers=user.headers)
    body = assert_problem(answer, 422)
    assert _locations(body) == [["body", "properties", "note", "1"]]
    assert _events_of(owner, user.id) == 0


async def test_an_escaped_backslash_before_u0000_is_plain_text(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    user = make_user(owner)
    event = {"event_type": "page.view", "properties": {"note": "\\u0000"}}
    answer = await client.post("/v1/analytics/event", json=event, headers=user.headers)
    assert answer.status_code == 202, answer.text


async def test_nul_in_a_query_parameter_is_a_422(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/organizations", params={"q": "clinic\u0000"})
    body = assert_problem(answer, 422)
    assert _locations(body) == [["query", "q"]]
    answer = await client.get("/v1/me/calendar.ics", params={"token": "abc\u0000"})
    body = assert_problem(answer, 422)
    assert _locations(body) == [["query", "token"]]


async def test_nul_in_the_path_is_a_422_saying_so(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/organizations/abc%00def")
    body = assert_problem(answer, 422)
    assert body["errors"] == [{"loc": ["path"], "msg": "Text must not contain NUL characters."}]


class _EventIn(BaseModel):
    organization_id: uuid.UUID
    event_type: str


async def test_an_organization_that_does_not_exist_in_the_body_is_a_422(
    settings: Settings, owner: Owner, owner_conninfo: str
) -> None:
    """The foreign key's refusal names the body field. Real routes look their ids up first (an
    analytics event for an organization the caller is no member of is a 404 before the key is
    checked), so a test-only route writes as the owner, straight into the key."""

    async def record(event: _EventIn) -> None:
        async with await psycopg.AsyncConnection.connect(owner_conninfo) as conn:
            await conn.execute(
                "insert into public.analytics_events (organization_id, event_type) values (%s, %s)",
                (event.organization_id, event.event_type),
            )

    app = build_app(settings)
    app.add_api_route("/v1/test/events", record, methods=["POST"])
    missing = uuid.uuid4()
    async with served(app) as http:
        answer = await http.post(
            "/v1/test/events", json={"organization_id": str(missing), "event_type": "page.view"}
        )
    body = assert_problem(answer, 422)
    assert _locations(body) == [["body", "organization_id"]]
    assert owner.execute(
        "select count(*) from public.analytics_events where organization_id = %s", (missing,)
    ).fetchone() == (0,)


async def test_a_date_past_year_9999_is_a_422(client: httpx.AsyncClient, owner: Owner) -> None:
    admin = make_user(owner)
    org_id = make_organization(owner, admin)
    service_id = make_service(owner, org_id)
    answer = await client.get(
        "/v1/available-slots",
        params={"service_id": str(service_id), "from": "9999-12-31", "to": "9999-12-31"},
    )
    assert_problem(answer, 422)
    answer = await client.get(
        f"/v1/analytics/organization/{org_id}/dashboard",
        params={"date": "9999-12-31"},
        headers=admin.headers,
    )
    assert_problem(answer, 422)


async def _call_writing_route(
    settings: Settings, owner_conninfo: str, statement: LiteralString, method: str, path: str
) -> httpx.Response:
    """Call a test-only route `/v1/test/items/{item_id}` that runs `statement` with the id of
    its path, as the owner, without looking it up first: the database's refusal is the answer."""

    async def write(item_id: uuid.UUID) -> None:
        async with await psycopg.AsyncConnection.connect(owner_conninfo) as conn:
            await conn.execute(statement, (item_id,))

    app = build_app(settings)
    app.add_api_route("/v1/test/items/{item_id}", write, methods=[method])
    async with served(app) as http:
        return await http.request(method, path)


async def test_a_path_id_that_names_no_row_is_a_404(
    settings: Settings, owner_conninfo: str
) -> None:
    answer = await _call_writing_route(
        settings,
        owner_conninfo,
        "insert into public.analytics_events (organization_id, event_type)"
        " values (%s, 'page.view')",
        "POST",
        f"/v1/test/items/{uuid.uuid4()}",
    )
    body = assert_problem(answer, 404)
    assert body["detail"] == "No such organization."


async def test_removing_a_row_that_others_reference_is_a_409(
    settings: Settings, owner: Owner, owner_conninfo: str
) -> None:
    clinic = make_clinic(owner)
    insert_as_owner(owner, clinic, make_user(owner), clinic.at(soon(clinic), "10:00"))
    answer = await _call_writing_route(
        settings,
        owner_conninfo,
        "delete from public.services where id = %s",
        "DELETE",
        f"/v1/test/items/{clinic.service_id}",
    )
    body = assert_problem(answer, 409)
    assert body["detail"] == "It is still in use by appointments."


async def test_a_number_beyond_its_column_type_is_a_422(
    settings: Settings, owner: Owner, owner_conninfo: str
) -> None:
    org_id = make_organization(owner)
    answer = await _call_writing_route(
        settings,
        owner_conninfo,
        "insert into public.services (organization_id, name, duration_minutes, capacity)"
        " values (%s, 'Too big', 30, 3000000000)",
        "POST",
        f"/v1/test/items/{org_id}",
    )
    assert_problem(answer, 422)
    assert owner.execute(
        "select count(*) from public.services where organization_id = %s", (org_id,)
    ).fetchone() == (0,)
