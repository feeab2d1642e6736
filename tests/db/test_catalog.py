"""The schema's shape: row-level security forced everywhere, and the indexes the design and
the policies rely on."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.factories import Owner

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Index:
    table: str
    name: str
    method: str
    keys: tuple[str, ...]
    include: tuple[str, ...]
    predicate: str | None


def _indexes(owner: Owner) -> list[Index]:
    rows = owner.execute(
        "select n.nspname || '.' || t.relname, i.relname, am.amname,"
        " array(select pg_get_indexdef(x.indexrelid, k, true)"
        "       from generate_series(1, x.indnkeyatts) k),"
        " array(select pg_get_indexdef(x.indexrelid, k, true)"
        "       from generate_series(x.indnkeyatts + 1, x.indnatts) k),"
        " pg_get_expr(x.indpred, x.indrelid)"
        " from pg_index x join pg_class i on i.oid = x.indexrelid"
        " join pg_class t on t.oid = x.indrelid join pg_namespace n on n.oid = t.relnamespace"
        " join pg_am am on am.oid = i.relam"
        " where n.nspname in ('public', 'app', 'auth') and not t.relispartition"
    ).fetchall()
    return [Index(r[0], r[1], r[2], tuple(r[3]), tuple(r[4]), r[5]) for r in rows]


async def test_row_level_security_is_enabled_and_forced_on_every_table(owner: Owner) -> None:
    rows = owner.execute(
        "select c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity, c.relispartition"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('public', 'app', 'auth') and c.relkind in ('r', 'p')"
        " and c.oid <> 'public.alembic_version'::regclass"
    ).fetchall()
    assert sum(1 for row in rows if row[3]) >= 4 * 3  # the monthly partitions are included
    assert [row[0] for row in rows if not (row[1] and row[2])] == []


# (table, method, leading keys, included columns, part of the predicate)
DESIGNED = [
    ("public.organizations", "gist", ("location",), (), None),
    ("public.organizations", "gin", ("settings",), (), None),
    ("public.analytics_events", "gin", ("properties",), (), None),
    ("public.organizations", "btree", ("kind",), (), "is_active"),
    ("public.services", "btree", ("organization_id", "name"), (), "is_active"),
    ("public.tickets", "btree", ("queue_id", "priority"), (), "'waiting'"),
    ("public.notifications", "btree", ("user_id", "created_at"), (), "read_at IS NULL"),
    (
        "public.appointments",
        "btree",
        ("service_id", "starts_at"),
        ("ends_at", "status"),
        "'booked'",
    ),
    (
        "public.service_working_hours",
        "btree",
        ("service_id", "weekday"),
        ("start_time", "end_time"),
        None,
    ),
    ("public.service_closures", "btree", ("service_id", "ends_at"), ("starts_at",), None),
]


@pytest.mark.parametrize(
    ("table", "method", "keys", "include", "predicate"),
    DESIGNED,
    ids=[f"{d[0]}-{d[1]}-{'-'.join(d[2])}" for d in DESIGNED],
)
async def test_designed_index_exists(
    owner: Owner,
    table: str,
    method: str,
    keys: tuple[str, ...],
    include: tuple[str, ...],
    predicate: str | None,
) -> None:
    matches = [
        index
        for index in _indexes(owner)
        if index.table == table
        and index.method == method
        and index.keys[: len(keys)] == keys
        and index.include == include
        and (index.predicate is None if predicate is None else predicate in (index.predicate or ""))
    ]
    assert matches, f"no {method} index on {table} {keys} include {include} where {predicate}"


POLICY_COLUMN = re.compile(r"(?<![.\w])(id|[a-z_]+_id|principal)\b(?!\s*\()")
# The deparsed policy names each helper's result ("SELECT app.principal_id() AS principal_id").
RESULT_ALIAS = re.compile(r"\bAS \w+")


async def test_every_column_a_policy_filters_on_leads_a_full_index(owner: Owner) -> None:
    """A partial index cannot find the rows outside its predicate, which a policy must reach."""
    filtered = {
        (f"{schema}.{table}", column)
        for schema, table, qual in owner.execute(
            "select schemaname, tablename, qual from pg_policies where qual is not null"
        ).fetchall()
        for column in POLICY_COLUMN.findall(RESULT_ALIAS.sub("", qual))
    }
    assert ("public.appointments", "customer_id") in filtered
    leading = {(index.table, index.keys[0]) for index in _indexes(owner) if index.predicate is None}
    missing = sorted(filtered - leading)
    assert not missing, missing
