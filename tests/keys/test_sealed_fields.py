"""Every sensitive field is ciphertext in its table and plaintext through the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from slotease.kit import crypto
from tests.appointments.arrange import book, make_clinic, soon
from tests.auth.support import sign_up
from tests.factories import Owner, User, make_user, unseal

pytestmark = pytest.mark.anyio

PREFIX = b"v1|test1|"


def stored(owner: Owner, query: str, *params: object) -> bytes:
    row = owner.execute(query, params).fetchone()
    assert row is not None
    value: bytes = row[0]
    return value


def assert_sealed(blob: bytes, plaintext: str, field: str, row_id: object) -> None:
    assert blob.startswith(PREFIX)
    assert plaintext.encode() not in blob
    assert unseal(field, row_id, blob) == plaintext


async def test_phone_numbers(client: httpx.AsyncClient, owner: Owner) -> None:
    session = await sign_up(client, phone="+33 1 23 45 67")
    user_id = session["user"]["id"]
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    phone = "select phone from public.user_profiles where user_id = %s"
    assert_sealed(stored(owner, phone, user_id), "+33 1 23 45 67", crypto.PHONE, user_id)

    changed = await client.patch("/v1/me", json={"phone": "+44 20 7946 0000"}, headers=headers)

    assert changed.json()["phone"] == "+44 20 7946 0000"
    assert (await client.get("/v1/me", headers=headers)).json()["phone"] == "+44 20 7946 0000"
    assert_sealed(stored(owner, phone, user_id), "+44 20 7946 0000", crypto.PHONE, user_id)


async def _appointment(
    client: httpx.AsyncClient, owner: Owner, customer: User, **extra: Any
) -> tuple[Any, dict[str, Any]]:
    clinic = make_clinic(owner)
    response = await book(client, customer, clinic, clinic.at(soon(clinic), "10:00"), **extra)
    assert response.status_code == 201, response.text
    return clinic, response.json()


async def test_appointment_notes_and_their_idempotent_replay(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    customer = make_user(owner)
    headers = {**customer.headers, "Idempotency-Key": str(uuid.uuid4())}
    clinic = make_clinic(owner)
    body = {
        "service_id": str(clinic.service_id),
        "starts_at": clinic.at(soon(clinic), "10:00").isoformat(),
        "notes": "allergic to penicillin",
    }
    created = (await client.post("/v1/appointments", json=body, headers=headers)).json()
    path = f"/v1/appointments/{created['id']}"
    notes = "select notes from public.appointments where id = %s"

    assert created["notes"] == "allergic to penicillin"
    assert (await client.get(path, headers=customer.headers)).json()["notes"] == created["notes"]
    assert_sealed(
        stored(owner, notes, created["id"]), created["notes"], crypto.NOTES, created["id"]
    )
    replay = await client.post("/v1/appointments", json=body, headers=headers)
    assert replay.json() == created
    kept = stored(
        owner,
        "select response_body::text from public.idempotency_keys where idempotency_key = %s",
        headers["Idempotency-Key"],
    )
    assert "penicillin" not in str(kept)

    edited = await client.put(path, json={"notes": "bring the scans"}, headers=customer.headers)

    assert edited.json()["notes"] == "bring the scans"
    listed = await client.get("/v1/appointments", headers=customer.headers)
    assert [item["notes"] for item in listed.json()["items"]] == ["bring the scans"]
    assert_sealed(
        stored(owner, notes, created["id"]), "bring the scans", crypto.NOTES, created["id"]
    )


async def test_a_value_moved_to_another_row_does_not_open(
    client: httpx.AsyncClient, owner: Owner
) -> None:
    customer = make_user(owner)
    _, first = await _appointment(client, owner, customer, notes="first visit")
    _, second = await _appointment(client, owner, customer)
    owner.execute(
        "update public.appointments set notes = (select notes from public.appointments"
        " where id = %s) where id = %s",
        (first["id"], second["id"]),
    )

    response = await client.get(f"/v1/appointments/{second['id']}", headers=customer.headers)

    assert response.status_code == 500
    assert "first visit" not in response.text


async def test_feedback_comments(client: httpx.AsyncClient, owner: Owner) -> None:
    customer = make_user(owner)
    _, appointment = await _appointment(client, owner, customer)
    for status in ("checked_in", "in_service", "completed"):
        owner.execute(
            "update public.appointments set status = %s where id = %s", (status, appointment["id"])
        )

    response = await client.post(
        f"/v1/appointments/{appointment['id']}/feedback",
        json={"rating": 4, "comment": "Kind nurse, long wait"},
        headers=customer.headers,
    )

    assert response.status_code == 201, response.text
    assert response.json()["comment"] == "Kind nurse, long wait"
    comment = "select comment from public.feedback where appointment_id = %s"
    assert_sealed(
        stored(owner, comment, appointment["id"]),
        "Kind nurse, long wait",
        crypto.COMMENT,
        appointment["id"],
    )


async def test_push_tokens(client: httpx.AsyncClient, owner: Owner) -> None:
    user = make_user(owner)
    path = "/v1/me/notification-preferences"

    written = await client.put(
        path, json={"push_token": "fcm-device-token-1"}, headers=user.headers
    )

    assert written.json()["push_token"] == "fcm-device-token-1"
    assert (await client.get(path, headers=user.headers)).json()[
        "push_token"
    ] == "fcm-device-token-1"
    token = "select push_token from public.notification_preferences where user_id = %s"
    assert_sealed(stored(owner, token, user.id), "fcm-device-token-1", crypto.PUSH_TOKEN, user.id)
