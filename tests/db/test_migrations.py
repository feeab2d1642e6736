"""The migrations, run from an empty database: up, down and up again, and the offline script
(what a Supabase project runs) building the same schema as the online path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from slotease.migrations import runner

pytestmark = pytest.mark.anyio

OURS = "('public', 'app', 'auth')"
CATALOG = {
    "tables": "select n.nspname, c.relname, c.relkind::text, c.relrowsecurity,"
    " c.relforcerowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace"
    f" where n.nspname in {OURS} and c.relkind in ('r', 'p', 'v', 'm')",
    "columns": "select table_schema, table_name, column_name, data_type, is_nullable,"
    f" column_default from information_schema.columns where table_schema in {OURS}",
    "indexes": f"select schemaname, tablename, indexname, indexdef from pg_indexes"
    f" where schemaname in {OURS}",
    "constraints": "select conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
    f" from pg_constraint where connamespace::regnamespace::text in {OURS}",
    "policies": "select schemaname, tablename, policyname, cmd, roles::text, qual, with_check"
    " from pg_policies",
    "functions": "select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),"
    " md5(p.prosrc), p.prosecdef, p.provolatile::text, p.proacl::text"
    f" from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in {OURS}",
    "triggers": "select tgrelid::regclass::text, tgname, tgfoid::regprocedure::text"
    " from pg_trigger where not tgisinternal",
    "grants": "select table_schema, table_name, grantee, privilege_type"
    f" from information_schema.role_table_grants where table_schema in {OURS}",
    "revision": "select version_num from public.alembic_version",
}
ROLES = ("anon", "authenticated", "service_role", "slotease_app", "slotease_worker")
# Who may become service_role: the worker's login role from 0011 on, the API's before it.
MEMBERSHIPS = (
    "select pg_has_role('slotease_app', 'service_role', 'member'),"
    " pg_has_role('slotease_worker', 'service_role', 'member')"
)


def memberships(conninfo: str) -> tuple[bool, bool] | None:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(MEMBERSHIPS).fetchone()
    return None if row is None else (row[0], row[1])


def catalog(conninfo: str) -> dict[str, set[tuple[Any, ...]]]:
    with psycopg.connect(conninfo) as conn:
        return {name: set(conn.execute(query).fetchall()) for name, query in CATALOG.items()}


async def test_upgrade_downgrade_upgrade(empty_database: Callable[[], str]) -> None:
    database = empty_database()
    runner.upgrade(database)
    migrated = catalog(database)
    tables = {(schema, name) for schema, name, *_ in migrated["tables"]}
    assert {("public", "appointments"), ("app", "platform_admins"), ("auth", "users")} <= tables
    assert len(migrated["revision"]) == 1
    assert memberships(database) == (False, True)

    runner.downgrade(database)
    assert memberships(database) == (True, False)
    with psycopg.connect(database) as conn:
        left = conn.execute(
            "select n.nspname || '.' || c.relname from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            f" where n.nspname in {OURS} and c.relkind in ('r', 'p', 'v', 'm')"
        ).fetchall()
        assert left == [("public.alembic_version",)]
        assert conn.execute("select count(*) from public.alembic_version").fetchone() == (0,)
        schemas = conn.execute(
            "select nspname from pg_namespace where nspname in ('app', 'auth')"
        ).fetchall()
        assert schemas == []
        functions = conn.execute(
            f"select count(*) from pg_proc where pronamespace::regnamespace::text in {OURS}"
        ).fetchone()
        assert functions == (0,)
        roles = conn.execute(
            "select rolname from pg_roles where rolname = any(%s) order by 1", (list(ROLES),)
        ).fetchall()
        assert roles == [(role,) for role in sorted(ROLES)]

    runner.upgrade(database)
    assert catalog(database) == migrated
    assert memberships(database) == (False, True)


async def test_offline_script_builds_the_same_schema(empty_database: Callable[[], str]) -> None:
    online, offline = empty_database(), empty_database()
    runner.upgrade(online)
    script = runner.offline_sql()
    assert "create policy" in script
    with psycopg.connect(offline, autocommit=True) as conn:
        conn.execute(script)
    expected, built = catalog(online), catalog(offline)
    for part in CATALOG:
        assert built[part] == expected[part], part
    assert expected["policies"]
