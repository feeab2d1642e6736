"""Secrets and hashes never reach the audit log, and a webhook's secret is shown only once:
after it is made, nobody acting through the API reads it again, not even an admin."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest

from slotease.config import Settings
from slotease.kit import crypto
from tests.appointments.arrange import make_clinic
from tests.db.acting import acting_as, as_user
from tests.factories import Owner, unseal
from tests.webhooks.support import create_webhook

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:9/hooks"


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_webhooks": True})


def _audit_text(rows: list[tuple[Any, ...]]) -> str:
    return json.dumps([list(row) for row in rows], default=str)


async def test_keys_and_webhooks_leave_no_secret_in_the_audit_log(
    client: httpx.AsyncClient, owner: Owner, app_conninfo: str
) -> None:
    clinic = make_clinic(owner)
    headers = clinic.admin.headers
    keys = f"/v1/organizations/{clinic.org_id}/api-keys"
    key = (await client.post(keys, json={"name": "Desk", "role": "staff"}, headers=headers)).json()
    rotated_key = await client.post(f"{keys}/{key['id']}/rotate", headers=headers)
    assert rotated_key.status_code in (200, 201), rotated_key.text
    webhook = await create_webhook(client, clinic.admin, clinic.org_id, URL, ["ticket.called"])
    rotated = await client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret", headers=headers)
    assert rotated.status_code == 201, rotated.text
    revealed = [key["key"], rotated_key.json()["key"], webhook["secret"], rotated.json()["secret"]]
    stored = owner.execute(
        "select k.key_hash, w.secret, w.previous_secret from public.api_keys k, public.webhooks w"
        " where k.id = %s and w.id = %s",
        (key["id"], webhook["id"]),
    ).fetchone()
    assert stored is not None
    # The rotation kept the replaced secret beside the new one.
    opened = tuple(unseal(crypto.WEBHOOK_SECRET, webhook["id"], blob) for blob in stored[1:])
    assert opened == (rotated.json()["secret"], webhook["secret"])
    secrets = [*revealed, stored[0], *(blob.hex() for blob in stored[1:])]

    audit = (
        "select table_name, operation, old_row, new_row from public.audit_log"
        " where organization_id = %s and table_name in ('api_keys', 'webhooks') order by id"
    )
    as_owner = owner.execute(audit, (clinic.org_id,)).fetchall()
    async with acting_as(app_conninfo, as_user(clinic.admin.id)) as conn:
        as_admin = await (await conn.execute(audit, (clinic.org_id,))).fetchall()
    assert as_admin == as_owner
    # A key's rotation revokes it and issues its successor.
    assert [(table, op) for table, op, *_ in as_owner] == [
        ("api_keys", "INSERT"),
        ("api_keys", "UPDATE"),
        ("api_keys", "INSERT"),
        ("webhooks", "INSERT"),
        ("webhooks", "UPDATE"),
    ]
    text = _audit_text(as_owner)
    assert [secret for secret in secrets if secret in text] == []
    webhook_rows = [row for row in as_owner if row[0] == "webhooks"]
    assert webhook_rows[1][3]["secret"] == webhook_rows[1][3]["previous_secret"] == "[redacted]"
    assert webhook_rows[0][3]["previous_secret"] is None
    assert webhook_rows[1][3]["previous_secret_expires_at"] is not None


async def test_the_webhook_secret_is_never_read_back_through_the_api_roles(
    client: httpx.AsyncClient, owner: Owner, app_conninfo: str
) -> None:
    clinic = make_clinic(owner)
    webhook = await create_webhook(client, clinic.admin, clinic.org_id, URL, ["ticket.called"])
    async with acting_as(app_conninfo, as_user(clinic.admin.id)) as conn:
        cursor = await conn.execute(
            "select url from public.webhooks where id = %s", (webhook["id"],)
        )
        assert await cursor.fetchall() == [(URL,)]
        for column in ("secret", "previous_secret", "*"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                async with conn.transaction():
                    await conn.execute(f"select {column} from public.webhooks")
