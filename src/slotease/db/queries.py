"""Running one statement and reading its rows, for the repositories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql
from psycopg.abc import Params
from psycopg.rows import DictRow

from slotease.db.database import Connection

Statement = str | sql.SQL | sql.Composed
# The one row type of every repository: psycopg's dict rows (the pool's row factory).
Row = DictRow


async def fetch_one(conn: Connection, query: Statement, params: Params | None = None) -> Row | None:
    cursor = await conn.execute(query, params)
    row: Row | None = await cursor.fetchone()
    return row


async def fetch_all(conn: Connection, query: Statement, params: Params | None = None) -> list[Row]:
    cursor = await conn.execute(query, params)
    rows: list[Row] = await cursor.fetchall()
    return rows


async def fetch_row(conn: Connection, query: Statement, params: Params | None = None) -> Row:
    """The row of a statement that always returns one (an aggregate, `insert ... returning`)."""
    row = await fetch_one(conn, query, params)
    assert row is not None
    return row


def assignments(columns: dict[str, Any]) -> sql.Composed:
    """`updated_at = now(), col = %(col)s, ...`; column names come from our own models."""
    parts: list[sql.Composable] = [sql.SQL("updated_at = now()")]
    parts += [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in columns
    ]
    return sql.SQL(", ").join(parts)


def keyset_after(
    sort_key: str, after: Sequence[Any] | None, params: dict[str, Any]
) -> sql.Composable:
    """The keyset condition `(sort_key) > (cursor values)`, or `true` on a first page."""
    if after is None:
        return sql.SQL("true")
    params["after_key"], params["after_id"] = after
    return sql.SQL("({}) > (%(after_key)s, %(after_id)s)").format(sql.SQL(sort_key))
