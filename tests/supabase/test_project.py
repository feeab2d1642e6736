"""SlotEase on a Supabase project: Supabase Auth's real schema, SlotEase's offline migration
applied as a non-superuser, and the API used with tokens for users Supabase Auth made."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect

from slotease.kit.problems import PROBLEM_BASE
from slotease.migrations import runner
from tests.auth.support import RunCli, count_users
from tests.auth.support import run_cli as run_cli
from tests.conftest import TEST_JWT_SECRET
from tests.realtime.conftest import ServerFactory, receive, subscribe, ws_url
from tests.supabase import project
from tests.supabase.conftest import EARLY_METADATA, UPGRADED_METADATA

pytestmark = pytest.mark.anyio

Conn = psycopg.Connection[Any]
EVERY_DAY = [{"weekday": day, "start": "08:00", "end": "20:00"} for day in range(7)]


class Person:
    def __init__(self, auth_admin: Conn, metadata: dict[str, Any] | None = None) -> None:
        self.id, self.email = project.insert_user(auth_admin, metadata=metadata)
        token = project.access_token(self.id, self.email, TEST_JWT_SECRET, metadata=metadata)
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, person: Person) -> dict[str, Any]:
    response = await client.get("/v1/me", headers=person.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_the_migration_applies_as_the_owner_and_leaves_supabase_auth_its_schema(
    superuser: Conn,
) -> None:
    revision = superuser.execute("select version_num from public.alembic_version").fetchall()
    assert revision == [(runner.head(),)]
    owned_in_auth = superuser.execute(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'auth' and c.relowner <> %s::regrole",
        (project.AUTH_ADMIN,),
    ).fetchone()
    assert owned_in_auth == (0,)
    functions_in_auth = superuser.execute(
        "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'auth' and p.proowner <> %s::regrole",
        (project.AUTH_ADMIN,),
    ).fetchone()
    assert functions_in_auth == (0,)
    triggers = superuser.execute(
        "select tgname, tgfoid::regproc::text from pg_trigger"
        " where tgrelid = 'auth.users'::regclass and not tgisinternal"
    ).fetchall()
    assert triggers == [("slotease_user_profile", "app.profile_from_auth_user")]
    tables = superuser.execute(
        "select count(*) filter (where c.relrowsecurity and c.relforcerowsecurity), count(*)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('public', 'app') and c.relkind in ('r', 'p')"
        " and not c.relispartition and c.relname <> 'alembic_version'"
        " and c.relname not like 'procrastinate%%'"
    ).fetchone()
    assert tables is not None
    assert tables[0] == tables[1] > 30
    assert superuser.execute("select app.accounts_in_supabase()").fetchone() == (True,)


async def test_a_user_made_before_the_migration_has_their_profile(
    client: httpx.AsyncClient, early_user: tuple[uuid.UUID, str]
) -> None:
    user_id, email = early_user
    headers = {"Authorization": f"Bearer {project.access_token(user_id, email, TEST_JWT_SECRET)}"}
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["id"], answer["email"], answer["full_name"]) == (
        str(user_id),
        email,
        EARLY_METADATA["name"],
    )
    assert answer["phone"] == EARLY_METADATA["phone"]


async def test_a_user_made_before_an_upgrade_to_profiles_gets_one(
    client: httpx.AsyncClient, upgraded_user: tuple[uuid.UUID, str]
) -> None:
    user_id, email = upgraded_user
    headers = {"Authorization": f"Bearer {project.access_token(user_id, email, TEST_JWT_SECRET)}"}
    answer = (await client.get("/v1/me", headers=headers)).json()
    assert (answer["full_name"], answer["phone"]) == (UPGRADED_METADATA["full_name"], None)


async def test_a_user_supabase_auth_signs_up_appears_with_their_name(
    client: httpx.AsyncClient, auth_admin: Conn
) -> None:
    ada = Person(auth_admin, {"full_name": "Ada Lovelace", "phone": "+44 20 7946 0000"})
    answer = await me(client, ada)
    assert (answer["full_name"], answer["phone"]) == ("Ada Lovelace", "+44 20 7946 0000")

    # supabase.auth.updateUser({data}) changes the metadata: the profile follows; what the
    # metadata does not carry stays.
    auth_admin.execute(
        "update auth.users set raw_user_meta_data = raw_user_meta_data || %s, updated_at = now()"
        " where id = %s",
        (json.dumps({"full_name": "Ada King"}), ada.id),
    )
    answer = await me(client, ada)
    assert (answer["full_name"], answer["phone"]) == ("Ada King", "+44 20 7946 0000")


async def test_metadata_the_profile_would_refuse_never_fails_the_sign_up(
    client: httpx.AsyncClient, auth_admin: Conn
) -> None:
    long = Person(auth_admin, {"name": "N" * 500, "phone": "call me maybe"})
    answer = await me(client, long)
    assert (answer["full_name"], answer["phone"]) == ("N" * 200, None)
    bare = Person(auth_admin)
    assert (await me(client, bare))["full_name"] == ""
    odd = Person(auth_admin, {"full_name": ["not", "text"], "phone": 42})
    assert (await me(client, odd))["phone"] is None


async def test_organization_service_booking_and_queue_for_supabase_users(
    client: httpx.AsyncClient, auth_admin: Conn
) -> None:
    admin = Person(auth_admin, {"full_name": "Clinic Admin"})
    customer = Person(auth_admin, {"full_name": "Customer One"})
    stranger = Person(auth_admin, {"full_name": "Someone Else"})

    org = await client.post(
        "/v1/organizations",
        json={"name": "Harbour Clinic", "kind": "clinic", "timezone": "UTC"},
        headers=admin.headers,
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    created = await client.post(
        f"/v1/organizations/{org_id}/services",
        json={"name": "Check-up", "duration_minutes": 30, "working_hours": EVERY_DAY},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    service_id = created.json()["id"]

    day = date.today() + timedelta(days=2)
    slots = await client.get(
        "/v1/available-slots",
        params={"service_id": service_id, "from": day.isoformat(), "to": day.isoformat()},
        headers=customer.headers,
    )
    assert slots.status_code == 200, slots.text
    first = slots.json()["slots"][0]
    booked = await client.post(
        "/v1/appointments",
        json={"service_id": service_id, "starts_at": first["starts_at"]},
        headers=customer.headers,
    )
    assert booked.status_code == 201, booked.text
    appointment = booked.json()

    # Row-level security between two users of Supabase Auth.
    path = f"/v1/appointments/{appointment['id']}"
    assert (await client.get(path, headers=customer.headers)).status_code == 200
    assert (await client.get(path, headers=admin.headers)).status_code == 200
    assert (await client.get(path, headers=stranger.headers)).status_code == 404
    theirs = await client.get("/v1/appointments", headers=stranger.headers)
    assert theirs.status_code == 200
    assert theirs.json()["items"] == []

    queue = await client.post(
        f"/v1/organizations/{org_id}/queues",
        json={"name": "Front desk", "prefix": "A"},
        headers=admin.headers,
    )
    assert queue.status_code == 201, queue.text
    queue_id = queue.json()["id"]
    ticket = await client.post(f"/v1/queues/{queue_id}/tickets", json={}, headers=customer.headers)
    assert ticket.status_code == 201, ticket.text
    ticket_path = f"/v1/tickets/{ticket.json()['id']}"
    assert (await client.get(ticket_path, headers=customer.headers)).status_code == 200
    assert (await client.get(ticket_path, headers=stranger.headers)).status_code == 404

    members = await client.get(f"/v1/organizations/{org_id}/members", headers=admin.headers)
    assert members.status_code == 200, members.text
    assert [m.get("full_name") for m in members.json()["items"]] == ["Clinic Admin"]


async def test_realtime_subscribe_as_a_supabase_user(
    start_server: ServerFactory, auth_admin: Conn
) -> None:
    admin = Person(auth_admin, {"full_name": "Desk Admin"})
    stranger = Person(auth_admin)
    with start_server(SLOTEASE_JWT_ACCEPTED_ISSUERS=project.ISSUER) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            org = await http.post(
                "/v1/organizations",
                json={"name": "Town Hall", "kind": "government", "timezone": "UTC"},
                headers=admin.headers,
            )
            queue = await http.post(
                f"/v1/organizations/{org.json()['id']}/queues",
                json={"name": "Permits", "prefix": "P"},
                headers=admin.headers,
            )
            topic = f"queue:{queue.json()['id']}"
            async with connect(ws_url(base, admin.token)) as ws:
                assert await subscribe(ws, topic) == {"type": "subscribed", "topic": topic}
                async with connect(ws_url(base, stranger.token)) as theirs:
                    refused = await subscribe(theirs, f"ticket:{uuid.uuid4()}")
                    assert refused["type"] == "error"
                ticket = await http.post(
                    f"/v1/queues/{queue.json()['id']}/tickets", json={}, headers=stranger.headers
                )
                assert ticket.status_code == 201, ticket.text
                event = await receive(ws)
                assert (event["type"], event["topic"]) == ("event", topic)


ACCOUNT_ROUTES = [
    (
        "POST",
        "/v1/auth/signup",
        {"email": "new@example.com", "password": "long enough 1", "full_name": "N"},
    ),
    (
        "POST",
        "/v1/auth/token",
        {"grant_type": "password", "email": "a@example.com", "password": "x"},
    ),
    ("POST", "/v1/auth/token", {"grant_type": "refresh_token", "refresh_token": "rt_x"}),
    ("POST", "/v1/auth/recover", {"email": "a@example.com"}),
    ("POST", "/v1/auth/reset", {"token": "at_x", "new_password": "long enough 1"}),
    ("POST", "/v1/auth/verify", {"token": "at_x"}),
    ("POST", "/v1/auth/logout", {"refresh_token": "rt_x"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ACCOUNT_ROUTES)
async def test_account_routes_name_supabase_auth_and_write_nothing(
    client: httpx.AsyncClient, superuser: Conn, method: str, path: str, body: dict[str, Any]
) -> None:
    users = "select count(*) from auth.users"
    before = superuser.execute(users).fetchone()
    response = await client.request(method, path, json=body)
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "accounts-in-supabase-auth"
    assert "Supabase Auth" in problem["detail"]
    assert superuser.execute(users).fetchone() == before


async def test_signed_in_account_changes_name_supabase_auth(
    client: httpx.AsyncClient, auth_admin: Conn
) -> None:
    person = Person(auth_admin, {"full_name": "Signed In"})
    for method, path, body in [
        ("POST", "/v1/auth/password", {"current_password": "x" * 8, "new_password": "y" * 12}),
        ("POST", "/v1/auth/verify/resend", None),
        ("POST", "/v1/me/mfa", None),
        ("POST", "/v1/me/mfa/confirm", {"code": "123456"}),
    ]:
        response = await client.request(method, path, json=body, headers=person.headers)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["type"] == PROBLEM_BASE + "accounts-in-supabase-auth", path
    # The profile is SlotEase's: changing it works as anywhere.
    changed = await client.patch("/v1/me", json={"full_name": "Renamed"}, headers=person.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["full_name"] == "Renamed"


async def test_the_users_command_names_supabase_auth(run_cli: RunCli, superuser: Conn) -> None:
    result = await run_cli("users", "create", "operator@example.com", "--password", "x" * 12)
    assert result.exit_code == 1, result.output
    assert "Accounts are managed by Supabase Auth" in result.output
    assert count_users(superuser, "operator@example.com") == 0
