"""All SQL of the encryption keys: the key check values of app.encryption_keys, and the
batches `slotease keys rotate` re-seals (as service_role, which bypasses RLS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from slotease.db.database import Connection
from slotease.db.queries import fetch_all, fetch_one
from slotease.kit import crypto

Row = dict[str, Any]


@dataclass(frozen=True)
class SealedColumn:
    """A column of sealed values: its table's primary key, which the rotation pages by, and
    the column whose value completes each value's context."""

    table: str
    column: str
    keys: tuple[str, ...]
    field: str
    row_id: str


SEALED_COLUMNS = (
    SealedColumn("user_profiles", "phone", ("user_id",), crypto.PHONE, "user_id"),
    SealedColumn(
        "appointments", "notes", ("id", "starts_at", "organization_id"), crypto.NOTES, "id"
    ),
    SealedColumn(
        "feedback", "comment", ("id", "organization_id"), crypto.COMMENT, "appointment_id"
    ),
    SealedColumn(
        "notification_preferences", "push_token", ("user_id",), crypto.PUSH_TOKEN, "user_id"
    ),
    SealedColumn("webhooks", "secret", ("id", "organization_id"), crypto.WEBHOOK_SECRET, "id"),
    SealedColumn(
        "webhooks", "previous_secret", ("id", "organization_id"), crypto.WEBHOOK_SECRET, "id"
    ),
)


async def key_checks(conn: Connection) -> list[Row]:
    return await fetch_all(
        conn, "select kid, check_value, retired_at from app.encryption_keys order by created_at"
    )


async def register_key(conn: Connection, kid: str, check_value: bytes) -> None:
    """A key seen for the first time; one already registered keeps its check value, which
    the check that follows compares with."""
    await conn.execute(
        "insert into app.encryption_keys (kid, check_value) values (%s, %s)"
        " on conflict (kid) do nothing",
        (kid, check_value),
    )


async def reinstate_key(conn: Connection, kid: str) -> None:
    """The encrypting key is live again, whatever an earlier rotation retired."""
    await conn.execute(
        "update app.encryption_keys set retired_at = null where kid = %s and retired_at is not null",
        (kid,),
    )


async def retire_keys_except(conn: Connection, kid: str) -> list[str]:
    rows = await fetch_all(
        conn,
        "update app.encryption_keys set retired_at = now()"
        " where kid <> %s and retired_at is null returning kid",
        (kid,),
    )
    return [row["kid"] for row in rows]


def _tuple(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, names)))


def _placeholders(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Placeholder, names)))


def _not_current(column: SealedColumn) -> sql.Composable:
    return sql.SQL(
        "{col} is not null and substring({col} from 1 for %(length)s) <> %(prefix)s"
    ).format(col=sql.Identifier(column.column))


async def mark_rotating(conn: Connection) -> None:
    """Re-sealing is no change to a row: the updated_at trigger leaves it alone (0019)."""
    await conn.execute("select set_config('slotease.rotating_keys', 'on', true)")


async def stale_batch(
    conn: Connection, column: SealedColumn, prefix: bytes, after: Row | None, limit: int
) -> list[Row]:
    """Up to `limit` values not under the key whose values begin with `prefix`, after `after`
    in primary key order, locked; rows a writer holds are skipped (a later pass finds them)."""
    query = sql.SQL(
        "select {keys}, {row_id} as row_id, {col} as value from {table}"
        " where {stale} and ({after} or {key_tuple} > {after_tuple})"
        " order by {keys} limit %(limit)s for update skip locked"
    ).format(
        keys=sql.SQL(", ").join(map(sql.Identifier, column.keys)),
        row_id=sql.Identifier(column.row_id),
        col=sql.Identifier(column.column),
        table=sql.Identifier("public", column.table),
        stale=_not_current(column),
        after=sql.SQL("true" if after is None else "false"),
        key_tuple=_tuple(column.keys),
        after_tuple=_placeholders(column.keys),
    )
    params = {
        **dict.fromkeys(column.keys),
        **(after or {}),
        "length": len(prefix),
        "prefix": prefix,
        "limit": limit,
    }
    return await fetch_all(conn, query, params)


async def reseal(conn: Connection, column: SealedColumn, rows: list[Row]) -> None:
    """Write each row's `sealed` value in place of the `value` it was read with."""
    query = sql.SQL(
        "update {table} set {col} = %(sealed)s where {key_tuple} = {key_values} and {col} = %(value)s"
    ).format(
        table=sql.Identifier("public", column.table),
        col=sql.Identifier(column.column),
        key_tuple=_tuple(column.keys),
        key_values=_placeholders(column.keys),
    )
    async with conn.cursor() as cursor:
        await cursor.executemany(query, rows)


async def any_stale(conn: Connection, column: SealedColumn, prefix: bytes) -> bool:
    query = sql.SQL("select 1 from {table} where {stale} limit 1").format(
        table=sql.Identifier("public", column.table), stale=_not_current(column)
    )
    return await fetch_one(conn, query, {"length": len(prefix), "prefix": prefix}) is not None
