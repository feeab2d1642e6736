from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

import httpx
import pytest
from psycopg import sql
from typer.testing import Result

from slotease.auth.passwords import verify_password
from tests.cli.conftest import RunCli
from tests.conftest import TEST_JWT_SECRET
from tests.factories import Owner, make_user


@pytest.fixture(scope="module")
def seed(run_cli: RunCli, owner_conninfo: str) -> Callable[[], Result]:
    """Runs `slotease demo` on this module's database."""
    env = {"DATABASE_URL": owner_conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}
    return lambda: run_cli("demo", env=env)


@pytest.fixture(scope="module")
def first_run(seed: Callable[[], Result]) -> Result:
    return seed()


def one(
    owner: Owner, query: LiteralString | sql.Composed, params: Sequence[object] | None = None
) -> Any:
    row = owner.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def table_counts(owner: Owner) -> dict[str, int]:
    tables = owner.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('public', 'app', 'auth') and c.relkind in ('r', 'p')"
    ).fetchall()
    return {
        f"{schema}.{name}": one(
            owner, sql.SQL("select count(*) from {}").format(sql.Identifier(schema, name))
        )
        for schema, name in tables
    }


def test_demo_prints_the_accounts_and_the_docs(first_run: Result) -> None:
    assert first_run.exit_code == 0, first_run.output
    out = first_run.stdout
    assert "demo-password" in out
    assert "admin@saint-louis-hospital.demo.slotease.dev" in out
    assert "staff2@harbor-bank-midtown.demo.slotease.dev" in out
    assert "customer01@demo.slotease.dev" in out
    assert "customer30@demo.slotease.dev" in out
    assert "/docs" in out


def test_three_organizations_of_three_kinds_and_time_zones(first_run: Result, owner: Owner) -> None:
    rows = owner.execute(
        "select kind, timezone, is_active, location, address from public.organizations"
    ).fetchall()
    assert {(kind, tz) for kind, tz, *_ in rows} == {
        ("hospital", "Europe/Paris"),
        ("bank", "America/New_York"),
        ("government", "Asia/Kolkata"),
    }
    assert all(active and location and address for _, _, active, location, address in rows)


def test_services_have_working_hours_and_an_upcoming_closure(
    first_run: Result, owner: Owner
) -> None:
    per_org = owner.execute(
        "select o.slug, count(distinct s.id),"
        "  count(distinct s.id) filter (where exists"
        "    (select 1 from public.service_working_hours h where h.service_id = s.id)),"
        "  count(distinct s.id) filter (where exists"
        "    (select 1 from public.service_closures c where c.service_id = s.id"
        "     and c.starts_at > now()))"
        " from public.organizations o join public.services s on s.organization_id = o.id"
        " group by o.slug"
    ).fetchall()
    assert len(per_org) == 3
    for _, services, with_hours, with_closure in per_org:
        assert 2 <= services <= 4
        assert with_hours == services
        assert with_closure == services
    # Weekdays count from Monday = 0; somebody opens on Saturday morning, nobody on Sunday.
    weekdays = {w for (w,) in owner.execute("select weekday from public.service_working_hours")}
    assert weekdays == {0, 1, 2, 3, 4, 5}
    assert (
        one(owner, "select count(*) from public.service_working_hours where start_time >= end_time")
        == 0
    )


def test_each_organization_has_an_admin_and_two_staff(first_run: Result, owner: Owner) -> None:
    roles = owner.execute(
        "select organization_id, array_agg(role order by role) from public.organization_members"
        " group by organization_id"
    ).fetchall()
    assert len(roles) == 3
    assert all(members == ["admin", "staff", "staff"] for _, members in roles)
    customers = one(
        owner,
        "select count(*) from auth.users u join public.user_profiles p on p.user_id = u.id"
        " where u.email like 'customer__@demo.slotease.dev' and p.full_name <> ''",
    )
    assert customers == 30


@pytest.mark.parametrize(
    "email", ["customer07@demo.slotease.dev", "admin@passport-seva-bengaluru.demo.slotease.dev"]
)
def test_demo_accounts_have_the_documented_password(
    first_run: Result, owner: Owner, email: str
) -> None:
    stored = one(owner, "select encrypted_password from auth.users where email = %s", (email,))
    assert isinstance(stored, str)
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "demo-password")
    assert not verify_password(stored, "Demo-password")


def test_past_appointments_cover_six_weeks_in_a_realistic_status_mix(
    first_run: Result, owner: Owner
) -> None:
    statuses = dict(
        owner.execute(
            "select status, count(*) from public.appointments where starts_at < now()"
            " group by status"
        ).fetchall()
    )
    assert set(statuses) == {"completed", "cancelled", "no_show"}
    assert statuses["completed"] > 2 * (statuses["cancelled"] + statuses["no_show"])
    earliest = one(owner, "select min(starts_at) from public.appointments")
    assert isinstance(earliest, datetime)
    assert timedelta(days=35) < datetime.now(UTC) - earliest < timedelta(days=44)
    upcoming = owner.execute(
        "select status, max(starts_at) from public.appointments where starts_at > now()"
        " group by status"
    ).fetchall()
    assert "booked" in {status for status, _ in upcoming}
    assert all(last < datetime.now(UTC) + timedelta(days=15) for _, last in upcoming)


def test_appointments_are_on_the_slot_grid_in_local_time(first_run: Result, owner: Owner) -> None:
    off_grid = one(
        owner,
        """
        select count(*) from public.appointments a
        join public.organizations o on o.id = a.organization_id
        join public.services s on s.id = a.service_id
        where not exists (
          select 1 from public.service_working_hours h
          where h.service_id = a.service_id
            and h.weekday = extract(isodow from a.starts_at at time zone o.timezone) - 1
            and (a.starts_at at time zone o.timezone)::time >= h.start_time
            and (a.ends_at at time zone o.timezone)::time <= h.end_time
            and extract(epoch from (a.starts_at at time zone o.timezone)::time - h.start_time)
                / 60 % s.slot_interval_minutes = 0
        ) or a.ends_at - a.starts_at <> make_interval(mins => s.duration_minutes)
        """,
    )
    assert off_grid == 0
    # The grid is in each organization's own time: opening times differ in UTC.
    first_starts = owner.execute(
        "select o.timezone, min((a.starts_at at time zone o.timezone)::time)"
        " from public.appointments a join public.organizations o on o.id = a.organization_id"
        " group by o.timezone"
    ).fetchall()
    assert all(local.hour in (8, 9) for _, local in first_starts)


def test_no_slot_holds_more_than_the_service_capacity(first_run: Result, owner: Owner) -> None:
    per_slot = owner.execute(
        "select s.capacity, count(*) from public.appointments a"
        " join public.services s on s.id = a.service_id"
        " group by s.id, s.capacity, a.starts_at"
    ).fetchall()
    assert all(taken <= capacity for capacity, taken in per_slot)
    # The check means something: some shared slots are full.
    assert any(taken == capacity > 1 for capacity, taken in per_slot)


def test_feedback_rates_completed_appointments_mostly_well(first_run: Result, owner: Owner) -> None:
    ratings = dict(
        owner.execute(
            "select f.rating, count(*) from public.feedback f"
            " join public.appointments a on a.id = f.appointment_id"
            "  and a.starts_at = f.appointment_starts_at and a.status = 'completed'"
            "  and a.customer_id = f.customer_id and a.service_id = f.service_id"
            " group by f.rating"
        ).fetchall()
    )
    assert sum(ratings.values()) == one(owner, "select count(*) from public.feedback")
    assert set(ratings) == {1, 2, 3, 4, 5}
    assert ratings[5] + ratings[4] > 3 * (ratings[1] + ratings[2])
    completed = one(owner, "select count(*) from public.appointments where status = 'completed'")
    assert isinstance(completed, int)
    assert 0 < sum(ratings.values()) < completed


def test_queues_have_todays_tickets_in_a_live_state_mix(first_run: Result, owner: Owner) -> None:
    queues = owner.execute(
        "select o.timezone, q.id, q.prefix, q.service_id from public.queues q"
        " join public.organizations o on o.id = q.organization_id"
    ).fetchall()
    assert len(queues) == 6
    assert {prefix for _, _, prefix, _ in queues} == {"A", "B"}
    assert sum(service is not None for *_, service in queues) == 3
    for timezone, queue_id, _, _ in queues:
        today = datetime.now(ZoneInfo(str(timezone))).date()
        tickets = owner.execute(
            "select number, status, counter, priority from public.tickets"
            " where queue_id = %s and service_date = %s order by number",
            (queue_id, today),
        ).fetchall()
        assert [number for number, *_ in tickets] == list(range(1, len(tickets) + 1))
        statuses = [status for _, status, _, _ in tickets]
        assert statuses.count("serving") == statuses.count("called") == 1
        assert statuses.count("served") >= 5
        assert statuses.count("waiting") >= 4
        counters = {status: counter for _, status, counter, _ in tickets}
        assert counters["serving"] == "Desk 1"
        assert counters["called"] == "Desk 2"
        assert all(counter is None for _, status, counter, _ in tickets if status == "waiting")
    assert (
        one(owner, "select count(*) from public.tickets where status = 'waiting' and priority > 0")
        > 0
    )


def test_seeding_again_changes_nothing(
    first_run: Result, seed: Callable[[], Result], owner: Owner
) -> None:
    before = table_counts(owner)
    assert before["public.appointments"] != 0
    again = seed()
    assert again.exit_code == 0, again.output
    assert table_counts(owner) == before
    assert again.stdout == first_run.stdout


@pytest.mark.anyio
async def test_a_walk_in_after_the_demo_gets_the_next_number(
    first_run: Result, owner: Owner, client: httpx.AsyncClient
) -> None:
    """The demo's tickets were drawn from the same counter reception uses next."""
    row = owner.execute(
        "select t.queue_id, max(t.number) from public.tickets t"
        " join public.queues q on q.id = t.queue_id"
        " join public.organizations o on o.id = q.organization_id"
        " where t.service_date = (now() at time zone o.timezone)::date"
        " group by t.queue_id order by t.queue_id limit 1"
    ).fetchone()
    assert row is not None
    queue_id, last = row
    customer = make_user(owner)
    response = await client.post(
        f"/v1/queues/{queue_id}/tickets", json={}, headers=customer.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["number"].endswith(f"-{last + 1:03d}")


def test_the_dashboards_have_history_right_after_seeding(first_run: Result, owner: Owner) -> None:
    """The daily rollups follow the seed's writes, so history shows before any job ran."""
    row = owner.execute(
        "select count(distinct day), sum(total) from public.analytics_daily_service"
    ).fetchone()
    assert row is not None
    days, total = row
    assert days >= 30
    assert total > 1000
