"""Monthly partitions: where rows land, how new months are made, and that date-bounded reads
only touch the months they ask for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.db.acting import SERVICE, acting_as, as_user
from tests.factories import Owner, make_organization, make_service, make_user

pytestmark = pytest.mark.anyio

# table -> (partition key, an insert taking the key's value as %(at)s)
PARTITIONED = {
    "appointments": (
        "starts_at",
        "insert into public.appointments"
        " (organization_id, service_id, customer_id, starts_at, ends_at)"
        " values (%(org)s, %(service)s, %(user)s, %(at)s, %(at)s + interval '30 minutes')",
    ),
    "notifications": (
        "created_at",
        "insert into public.notifications (user_id, channel, created_at)"
        " values (%(user)s, 'email', %(at)s)",
    ),
    "analytics_events": (
        "occurred_at",
        "insert into public.analytics_events (event_type, occurred_at) values ('x', %(at)s)",
    ),
    "audit_log": (
        "at",
        "insert into public.audit_log (table_name, operation, at)"
        " values ('organizations', 'INSERT', %(at)s)",
    ),
}
FAR_FUTURE = datetime(2090, 1, 15, tzinfo=UTC)


def month_start(offset: int) -> datetime:
    """The first instant (UTC) of the month `offset` months from now."""
    now = datetime.now(UTC)
    months = now.year * 12 + now.month - 1 + offset
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)


def partition(table: str, start: datetime) -> str:
    return f"{table}_p{start:%Y%m}"


@pytest.fixture
def refs(owner: Owner) -> dict[str, Any]:
    user = make_user(owner)
    org = make_organization(owner)
    # Capacity is beside the point here: rows of one service may overlap.
    return {"org": org, "service": make_service(owner, org, capacity=100), "user": user.id}


@pytest.mark.parametrize("table", PARTITIONED)
async def test_rows_land_in_their_month_or_the_default(
    owner: Owner, refs: dict[str, Any], table: str
) -> None:
    insert = PARTITIONED[table][1] + " returning tableoid::regclass::text"
    next_month = month_start(1)
    cases = {
        datetime.now(UTC): partition(table, month_start(0)),
        next_month - timedelta(microseconds=1): partition(table, month_start(0)),
        next_month: partition(table, next_month),
        FAR_FUTURE: f"{table}_default",
    }
    landed = {}
    with owner.transaction(force_rollback=True):
        for at in cases:
            row = owner.execute(insert, refs | {"at": at}).fetchone()
            assert row is not None
            landed[at] = row[0]
    assert landed == cases


async def test_ensure_monthly_partitions_creates_months_and_moves_rows(
    owner: Owner, refs: dict[str, Any], worker_conninfo: str
) -> None:
    ahead = 40
    wanted = [partition("appointments", month_start(offset)) for offset in range(ahead + 1)]
    stray_at = month_start(ahead) + timedelta(days=3, hours=10)
    async with acting_as(worker_conninfo, SERVICE) as conn:

        async def existing() -> set[str]:
            cursor = await conn.execute(
                "select inhrelid::regclass::text from pg_inherits"
                " where inhparent = 'public.appointments'::regclass"
            )
            return {name for (name,) in await cursor.fetchall()}

        async def ensure() -> int:
            cursor = await conn.execute(
                "select app.ensure_monthly_partitions('public.appointments', 0, %s)", (ahead,)
            )
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

        cursor = await conn.execute(
            PARTITIONED["appointments"][1] + " returning id, tableoid::regclass::text",
            refs | {"at": stray_at},
        )
        stray = await cursor.fetchone()
        assert stray is not None
        assert stray[1] == "appointments_default"
        missing = set(wanted) - await existing()
        assert partition("appointments", month_start(ahead)) in missing

        assert await ensure() == len(missing)
        assert set(wanted) <= await existing()
        assert await ensure() == 0

        cursor = await conn.execute(
            "select tableoid::regclass::text from public.appointments where id = %s", (stray[0],)
        )
        assert await cursor.fetchall() == [(partition("appointments", month_start(ahead)),)]
        cursor = await conn.execute(
            "select relname from pg_class where relname = any(%s)"
            " and not (relrowsecurity and relforcerowsecurity)",
            (sorted(missing),),
        )
        assert await cursor.fetchall() == []


async def test_only_service_role_may_make_partitions(owner: Owner, app_conninfo: str) -> None:
    user = make_user(owner, super_admin=True)
    async with acting_as(app_conninfo, as_user(user.id)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("select app.ensure_monthly_partitions('public.appointments', 0, 1)")


def _relations(plan: Any) -> set[str]:
    if isinstance(plan, dict):
        found = {plan["Relation Name"]} if "Relation Name" in plan else set()
        return found.union(*(_relations(value) for value in plan.values()))
    if isinstance(plan, list):
        return set().union(*(_relations(item) for item in plan))
    return set()


@pytest.mark.parametrize("table", PARTITIONED)
async def test_a_date_bounded_read_touches_only_its_months(
    owner: Owner, app_conninfo: str, table: str
) -> None:
    key = PARTITIONED[table][0]
    super_admin = make_user(owner, super_admin=True)

    async def scanned(lower: datetime | None, upper: datetime | None) -> set[str]:
        bounded = sql.SQL(" where {key} >= {lower} and {key} < {upper}").format(
            key=sql.Identifier(key), lower=sql.Literal(lower), upper=sql.Literal(upper)
        )
        query = sql.SQL("explain (format json) select count(*) from {table}{where}").format(
            table=sql.Identifier("public", table), where=bounded if lower else sql.SQL("")
        )
        async with acting_as(app_conninfo, as_user(super_admin.id)) as conn:
            cursor = await conn.execute(query)
            row = await cursor.fetchone()
            assert row is not None
            return _relations(row[0])

    this_month, next_month, after = month_start(0), month_start(1), month_start(2)
    assert await scanned(this_month, next_month) == {partition(table, this_month)}
    assert await scanned(this_month, after) == {
        partition(table, this_month),
        partition(table, next_month),
    }
    assert len(await scanned(None, None)) > 3
