"""Key rotation online, and the start-up check of the keyring against the database. The
tests run in order on one database: the test key first, then a new key rotated in."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from anyio import to_thread
from typer.testing import CliRunner, Result

from slotease.cli import cli
from slotease.config import Settings, get_settings
from slotease.db.pools import worker_database
from slotease.keys import service
from slotease.kit import crypto
from slotease.kit.crypto import KeyringError, parse_keyring
from tests.appointments.arrange import make_clinic, soon
from tests.conftest import TEST_ENCRYPTION_KEYS, TEST_JWT_SECRET
from tests.factories import Owner, make_user, seal
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

NEW = crypto.generate_key("test2")
ROTATED = f"{NEW},{TEST_ENCRYPTION_KEYS}"
APPOINTMENTS = 24
EDITS = 4


async def test_a_wrong_key_for_a_known_id_stops_the_start(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # The client's app registered the test key; another key under its id cannot start.
    wrong = "test1:" + base64.b64encode(b"w" * 32).decode()
    app = build_app(settings, encryption_keys=wrong)
    with pytest.raises(KeyringError, match="key 'test1' is not the key"):
        async with served(app):
            pass


async def test_a_key_still_in_use_cannot_be_left_out(settings: Settings) -> None:
    with pytest.raises(KeyringError, match="key 'test1' is missing"):
        async with served(build_app(settings, encryption_keys=NEW)):
            pass


def _sealed_columns(owner: Owner) -> list[bytes]:
    rows = owner.execute(
        "select phone from public.user_profiles where phone is not null"
        " union all select notes from public.appointments where notes is not null"
        " union all select push_token from public.notification_preferences"
        " where push_token is not null"
        " union all select secret from public.webhooks"
        " union all select decode(payload ->> 'notes', 'base64') from public.webhook_deliveries"
        " union all select decode(response_body ->> 'notes', 'base64')"
        " from public.idempotency_keys"
    ).fetchall()
    return [bytes(row[0]) for row in rows]


async def test_rotation_under_concurrent_writes_loses_nothing(
    client: httpx.AsyncClient, owner: Owner, settings: Settings
) -> None:
    customer = make_user(owner)
    clinic = make_clinic(owner, capacity=APPOINTMENTS)
    day = soon(clinic)
    hook = uuid.uuid4()
    owner.execute(
        "insert into public.webhooks (id, organization_id, url, events, secret)"
        " values (%s, %s, 'https://example.com/hook', '{appointment.created}', %s)",
        (hook, clinic.org_id, seal(crypto.WEBHOOK_SECRET, hook, "whsec_before")),
    )

    ids = []
    for index in range(APPOINTMENTS):
        # Each booking leaves copies of its notes in a webhook delivery and a replayable answer.
        response = await client.post(
            "/v1/appointments",
            json={
                "service_id": str(clinic.service_id),
                "starts_at": clinic.at(day, "10:00").isoformat(),
                "notes": f"n{index}",
            },
            headers={**customer.headers, "Idempotency-Key": f"booking-{index}"},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    # A value from before migration 0019, and sealed values of the other columns.
    owner.execute("update public.appointments set notes = 'v0|legacy' where id = %s", (ids[0],))
    owner.execute(
        "update public.user_profiles set phone = %s where user_id = %s",
        (seal(crypto.PHONE, customer.id, "+33 1 23 45 67"), customer.id),
    )
    put = await client.put(
        "/v1/me/notification-preferences", json={"push_token": "tok"}, headers=customer.headers
    )
    assert put.status_code == 200
    async with served(build_app(settings, encryption_keys=ROTATED)) as rotated:

        async def edit(appointment_id: str) -> None:
            for round_ in range(EDITS):
                response = await rotated.put(
                    f"/v1/appointments/{appointment_id}",
                    json={"notes": f"{appointment_id}/{round_}"},
                    headers=customer.headers,
                )
                assert response.status_code == 200, response.text

        database = worker_database(settings, max_size=2)
        await database.open()
        try:
            # Writers on every other appointment while the rotation walks them in batches of 2.
            report, *_ = await asyncio.gather(
                service.rotate(database, parse_keyring(ROTATED), batch_size=2),
                *(edit(appointment_id) for appointment_id in ids[1::2]),
            )
        finally:
            await database.close()

        for index, appointment_id in enumerate(ids):
            got = await rotated.get(f"/v1/appointments/{appointment_id}", headers=customer.headers)
            expected = (
                "legacy"
                if index == 0
                else f"{appointment_id}/{EDITS - 1}"
                if index % 2
                else f"n{index}"
            )
            assert got.json()["notes"] == expected

    assert report.remaining == []
    assert report.retired == ["test1"]
    assert report.resealed["appointments.notes"] >= APPOINTMENTS // 2
    assert report.resealed["webhooks.secret"] == 1
    values = _sealed_columns(owner)
    assert len(values) == 3 * APPOINTMENTS + 3
    assert all(value.startswith(b"v1|test2|") for value in values)
    # Only the new key is needed now: it starts alone and reads everything.
    async with served(build_app(settings, encryption_keys=NEW)) as after:
        me = await after.get("/v1/me", headers=customer.headers)
        assert me.json()["phone"] == "+33 1 23 45 67"
        prefs = await after.get("/v1/me/notification-preferences", headers=customer.headers)
        assert prefs.json()["push_token"] == "tok"
    retired = owner.execute(
        "select kid from app.encryption_keys where retired_at is not null"
    ).fetchall()
    assert retired == [("test1",)]


async def test_a_row_a_writer_holds_is_left_for_the_next_run(
    owner: Owner, owner_conninfo: str, settings: Settings
) -> None:
    row = owner.execute("select id from public.appointments limit 1").fetchone()
    assert row is not None
    owner.execute("update public.appointments set notes = 'v0|held' where id = %s", row)
    database = worker_database(settings, max_size=1)
    await database.open()
    try:
        with psycopg.connect(owner_conninfo) as writer:
            writer.execute("select 1 from public.appointments where id = %s for update", row)
            held = await service.rotate(database, parse_keyring(NEW), batch_size=2)
        again = await service.rotate(database, parse_keyring(NEW), batch_size=2)
    finally:
        await database.close()

    assert (held.remaining, held.retired) == (["appointments.notes"], [])
    assert "run it again" in held.lines()[-1]
    assert (again.remaining, again.resealed["appointments.notes"]) == ([], 1)
    notes = owner.execute("select notes from public.appointments where id = %s", row).fetchone()
    assert notes is not None
    assert (
        parse_keyring(NEW).decrypt(notes[0], context=crypto.field_context(crypto.NOTES, row[0]))
        == "held"
    )


async def _run(owner_conninfo: str, tmp_path: Path, *args: str, keys: str) -> Result:
    env = {
        "DATABASE_URL": owner_conninfo,
        "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET,
        "SLOTEASE_ENCRYPTION_KEYS": keys,
        "SLOTEASE_DATA_DIR": str(tmp_path),
        "SLOTEASE_LOG_LEVEL": "WARNING",
    }
    get_settings.cache_clear()
    try:
        # The command runs its own event loop, so it gets a thread of its own.
        return await to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=env))
    finally:
        get_settings.cache_clear()


async def test_the_keys_commands(owner_conninfo: str, tmp_path: Path, owner: Owner) -> None:
    generated = await _run(owner_conninfo, tmp_path, "keys", "generate", "test3", keys=NEW)
    assert generated.exit_code == 0, generated.output
    newest = generated.stdout.strip()
    assert parse_keyring(newest).current == "test3"

    refused = await _run(owner_conninfo, tmp_path, "keys", "rotate", keys=TEST_ENCRYPTION_KEYS)
    assert refused.exit_code == 2
    assert "configuration error: SLOTEASE_ENCRYPTION_KEYS: key 'test2' is missing" in refused.output

    rotated = await _run(owner_conninfo, tmp_path, "keys", "rotate", keys=f"{newest},{NEW}")
    assert rotated.exit_code == 0, rotated.output
    assert "appointments.notes:" in rotated.stdout
    assert "retired: test2" in rotated.stdout
    assert all(value.startswith(b"v1|test3|") for value in _sealed_columns(owner))
