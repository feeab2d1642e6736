"""All SQL of the encryption keys: the key check values of app.encryption_keys, and the
batches `slotease keys rotate` re-seals (as service_role, which bypasses RLS)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from slotease.db.database import Connection
from slotease.db.queries import Row, fetch_all, fetch_one
from slotease.kit import crypto


@dataclass(frozen=True)
class SealedColumn:
    """A column of sealed values: its table's primary key, which the rotation pages by, and
    the column whose value completes each value's context. With `json_key`, the column is a
    JSON copy of a record (`kit.crypto.seal_in`): the value is that key's, in base64, and
    the record's `id` completes the context."""

    table: str
    column: str
    keys: tuple[str, ...]
    field: str
    row_id: str = "id"
    json_key: str | None = None
    schema: str = "public"

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}" + (f".{self.json_key}" if self.json_key else "")

    @property
    def value(self) -> sql.Composable:
        column = sql.Identifier(self.column)
        if self.json_key is None:
            return column
        return sql.SQL("decode({} ->> {}, 'base64')").format(column, sql.Literal(self.json_key))

    @property
    def row_id_value(self) -> sql.Composable:
        if self.json_key is None:
            return sql.Identifier(self.row_id)
        return sql.SQL("{} ->> {}").format(sql.Identifier(self.column), sql.Literal(self.row_id))

    @property
    def assignment(self) -> sql.Composable:
        """`column = <the re-sealed value>`, from the `sealed` parameter (bytes)."""
        column = sql.Identifier(self.column)
        if self.json_key is None:
            return sql.SQL("{} = %(sealed)s").format(column)
        return sql.SQL(
            "{col} = jsonb_set({col}, array[{key}],"
            # As Python writes base64: without the line breaks of PostgreSQL's.
            " to_jsonb(translate(encode(%(sealed)s, 'base64'), E'\\n', '')))"
        ).format(col=column, key=sql.Literal(self.json_key))


SEALED_COLUMNS = (
    SealedColumn("user_profiles", "phone", ("user_id",), crypto.PHONE, "user_id"),
    SealedColumn("appointments", "notes", ("id", "starts_at", "organization_id"), crypto.NOTES),
    # The copies of an appointment in a webhook's payloads and in a replayable answer.
    SealedColumn(
        "webhook_deliveries", "payload", ("id", "organization_id"), crypto.NOTES, json_key="notes"
    ),
    SealedColumn(
        "idempotency_keys",
        "response_body",
        ("principal", "idempotency_key"),
        crypto.NOTES,
        json_key="notes",
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
    SealedColumn("mfa_factors", "secret", ("user_id",), crypto.MFA_SECRET, "user_id", schema="app"),
)


async def key_checks(conn: Connection) -> list[Row]:
    return await fetch_all(
        conn, "select kid, check_value, retired_at from app.encryption_keys order by created_at"
    )


async def register_key(conn: Connection, kid: str, check_value: bytes) -> None:
    """A key seen for the first time; one already registered keeps its check value, which
    the check that follows compares with."""
    await conn.execute(
        "insert into app.encryption_keys (kid, check_value) values (%(kid)s, %(check_value)s)"
        " on conflict (kid) do nothing",
        {"kid": kid, "check_value": check_value},
    )


async def reinstate_key(conn: Connection, kid: str) -> None:
    """The encrypting key is live again, whatever an earlier rotation retired."""
    await conn.execute(
        "update app.encryption_keys set retired_at = null"
        " where kid = %(kid)s and retired_at is not null",
        {"kid": kid},
    )


async def retire_keys_except(conn: Connection, kid: str) -> list[str]:
    rows = await fetch_all(
        conn,
        "update app.encryption_keys set retired_at = now()"
        " where kid <> %(kid)s and retired_at is null returning kid",
        {"kid": kid},
    )
    return [row["kid"] for row in rows]


def _tuple(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, names)))


def _placeholders(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Placeholder, names)))


def _not_current(column: SealedColumn) -> sql.Composable:
    return sql.SQL(
        "{value} is not null and substring({value} from 1 for %(length)s) <> %(prefix)s"
    ).format(value=column.value)


async def mark_rotating(conn: Connection) -> None:
    """Re-sealing is no change to a row: the updated_at trigger leaves it alone (0019)."""
    await conn.execute("select set_config('slotease.rotating_keys', 'on', true)")


async def stale_batch(
    conn: Connection, column: SealedColumn, prefix: bytes, after: Row | None, limit: int
) -> list[Row]:
    """Up to `limit` values not under the key whose values begin with `prefix`, after `after`
    in primary key order, locked; rows a writer holds are skipped (a later pass finds them)."""
    query = sql.SQL(
        "select {keys}, {row_id} as row_id, {value} as value from {table}"
        " where {stale} and ({after} or {key_tuple} > {after_tuple})"
        " order by {keys} limit %(limit)s for update skip locked"
    ).format(
        keys=sql.SQL(", ").join(map(sql.Identifier, column.keys)),
        row_id=column.row_id_value,
        value=column.value,
        table=sql.Identifier(column.schema, column.table),
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
        "update {table} set {assignment} where {key_tuple} = {key_values} and {value} = %(value)s"
    ).format(
        table=sql.Identifier(column.schema, column.table),
        assignment=column.assignment,
        value=column.value,
        key_tuple=_tuple(column.keys),
        key_values=_placeholders(column.keys),
    )
    async with conn.cursor() as cursor:
        await cursor.executemany(query, rows)


async def any_stale(conn: Connection, column: SealedColumn, prefix: bytes) -> bool:
    query = sql.SQL("select 1 from {table} where {stale} limit 1").format(
        table=sql.Identifier(column.schema, column.table), stale=_not_current(column)
    )
    return await fetch_one(conn, query, {"length": len(prefix), "prefix": prefix}) is not None
