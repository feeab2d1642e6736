"""Feedback rules hold for every writer, not only the API: a customer writing SQL directly
(as on a Supabase project) can rate only their own completed appointment."""

from __future__ import annotations

import psycopg
import pytest

from tests.appointments.arrange import insert_as_owner, make_clinic, soon
from tests.db.acting import acting_as, as_user
from tests.factories import Owner, make_user

pytestmark = pytest.mark.anyio

FEEDBACK_SQL = (
    "insert into public.feedback (organization_id, appointment_id, appointment_starts_at,"
    " service_id, customer_id, rating) values (%s, %s, %s, %s, %s, 5)"
)


def appointment_of(owner: Owner, customer_id: object) -> tuple[object, object, object, object]:
    row = owner.execute(
        "select id, starts_at, organization_id, service_id from public.appointments"
        " where customer_id = %s",
        (customer_id,),
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


async def test_a_customer_cannot_rate_someone_elses_appointment(
    owner: Owner, app_conninfo: str
) -> None:
    clinic = make_clinic(owner)
    alice, mallory = make_user(owner), make_user(owner)
    insert_as_owner(owner, clinic, alice, clinic.at(soon(clinic), "10:00"))
    appointment_id, starts_at, org_id, service_id = appointment_of(owner, alice.id)
    owner.execute(
        "update public.appointments set status = 'checked_in' where id = %s", (appointment_id,)
    )
    owner.execute(
        "update public.appointments set status = 'in_service' where id = %s", (appointment_id,)
    )
    owner.execute(
        "update public.appointments set status = 'completed' where id = %s", (appointment_id,)
    )

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with acting_as(app_conninfo, as_user(mallory.id)) as conn:
            await conn.execute(
                FEEDBACK_SQL, (org_id, appointment_id, starts_at, service_id, mallory.id)
            )

    async with acting_as(app_conninfo, as_user(alice.id)) as conn:
        await conn.execute(FEEDBACK_SQL, (org_id, appointment_id, starts_at, service_id, alice.id))
        cursor = await conn.execute(
            "select customer_id, service_id from public.feedback where appointment_id = %s",
            (appointment_id,),
        )
        assert await cursor.fetchone() == (alice.id, service_id)


async def test_feedback_needs_a_completed_appointment(owner: Owner, app_conninfo: str) -> None:
    clinic = make_clinic(owner)
    alice = make_user(owner)
    insert_as_owner(owner, clinic, alice, clinic.at(soon(clinic), "11:00"))
    appointment_id, starts_at, org_id, service_id = appointment_of(owner, alice.id)

    with pytest.raises(psycopg.Error) as refused:
        async with acting_as(app_conninfo, as_user(alice.id)) as conn:
            await conn.execute(
                FEEDBACK_SQL, (org_id, appointment_id, starts_at, service_id, alice.id)
            )
    assert refused.value.sqlstate == "SESTA"
    assert owner.execute("select count(*) from public.feedback").fetchone() == (0,)
