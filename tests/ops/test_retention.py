"""Retention of free text: the daily task erases the words of webhook payloads, report
contents, notification bodies and feedback comments past their SLOTEASE_RETENTION_* period,
their audit copies included, and keeps the rows, statuses and figures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from slotease.config import Settings
from slotease.kit import crypto
from tests.appointments.arrange import make_clinic
from tests.factories import Owner, make_user, seal, unseal
from tests.notifications.support import run_periodic

pytestmark = pytest.mark.anyio


def _feedback(owner: Owner, clinic: Any, age: timedelta, comment: str) -> Any:
    customer = make_user(owner)
    row = owner.execute(
        "insert into public.appointments (organization_id, service_id, customer_id, starts_at,"
        " ends_at) values (%(org)s, %(service)s, %(customer)s, now() - %(age)s,"
        " now() - %(age)s + interval '30 minutes') returning id, starts_at",
        {"org": clinic.org_id, "service": clinic.service_id, "customer": customer.id, "age": age},
    ).fetchone()
    assert row is not None
    for step in ("checked_in", "in_service", "completed"):
        owner.execute("update public.appointments set status = %s where id = %s", (step, row[0]))
    inserted = owner.execute(
        "insert into public.feedback (organization_id, appointment_id, appointment_starts_at,"
        " service_id, customer_id, rating, comment, created_at)"
        " values (%s, %s, %s, %s, %s, 5, %s, now() - %s) returning id",
        (
            clinic.org_id,
            row[0],
            row[1],
            clinic.service_id,
            customer.id,
            seal(crypto.COMMENT, row[0], comment),
            age,
        ),
    ).fetchone()
    assert inserted is not None
    return inserted[0]


async def test_free_text_past_its_retention_loses_its_words_and_nothing_else(
    owner: Owner, settings: Settings
) -> None:
    clinic = make_clinic(owner)
    old, fresh = timedelta(days=40), timedelta(days=1)
    webhook = owner.execute(
        "insert into public.webhooks (organization_id, url, events, secret)"
        " values (%s, 'https://hooks.invalid/r', '{appointment.created}', 's') returning id",
        (clinic.org_id,),
    ).fetchone()
    assert webhook is not None
    for age in (old, fresh):
        owner.execute(
            "insert into public.webhook_deliveries (organization_id, webhook_id, event, payload,"
            " status, created_at) values (%s, %s, 'appointment.created', %s, 'delivered',"
            " now() - %s)",
            (clinic.org_id, webhook[0], f'{{"notes": "delivery {age.days}"}}', age),
        )
        owner.execute(
            "insert into public.analytics_reports (organization_id, kind, format, from_date,"
            " to_date, status, content, content_type, finished_at)"
            " values (%s, 'feedback', 'csv', current_date, current_date, 'ready', %s,"
            " 'text/csv', now() - %s)",
            (clinic.org_id, f"report {age.days}".encode(), age),
        )
        owner.execute(
            "insert into public.notifications (organization_id, user_id, channel, subject, body,"
            " status, created_at) values (%s, %s, 'email', 'Hi', %s, 'sent', now() - %s)",
            (clinic.org_id, clinic.staff.id, f"body {age.days}", age),
        )
        _feedback(owner, clinic, age, f"comment {age.days}")
    short = settings.model_copy(
        update={
            name: timedelta(days=30)
            for name in ("retention_webhook_payloads", "retention_report_contents",
                         "retention_notification_bodies", "retention_feedback_comments")
        }
    )  # fmt: skip

    await run_periodic(short, "ops.apply_text_retention")

    def texts(query: str) -> set[Any]:
        return {row[0] for row in owner.execute(query, (clinic.org_id,)).fetchall()}

    assert texts(
        "select payload ->> 'notes' from public.webhook_deliveries where organization_id = %s"
    ) == {None, "delivery 1"}
    assert texts(
        "select convert_from(content, 'UTF8') from public.analytics_reports"
        " where organization_id = %s"
    ) == {None, "report 1"}
    assert texts("select body from public.notifications where organization_id = %s") == {
        None,
        "body 1",
    }
    comments = owner.execute(
        "select appointment_id, comment from public.feedback where organization_id = %s",
        (clinic.org_id,),
    ).fetchall()
    assert {None if c is None else unseal(crypto.COMMENT, a, c) for a, c in comments} == {
        None, "comment 1"
    }  # fmt: skip
    # The audit log's copies are sealed too: only the fresh comment's copy is left.
    copies = owner.execute(
        "select c.comment from public.audit_log l,"
        " lateral (values (l.old_row ->> 'comment'), (l.new_row ->> 'comment')) c (comment)"
        " where l.organization_id = %s and l.table_name = 'feedback' and c.comment is not null",
        (clinic.org_id,),
    ).fetchall()
    assert len(copies) == 1
    # The rows and their figures stay.
    assert texts(
        "select count(*) || '/' || sum(rating) from public.feedback where organization_id = %s"
    ) == {"2/10"}
    assert texts("select status from public.webhook_deliveries where organization_id = %s") == {
        "delivered"
    }
