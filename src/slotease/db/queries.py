"""Running one statement and reading its rows, for the repositories."""

from __future__ import annotations

from psycopg import sql
from psycopg.abc import Params
from psycopg.rows import DictRow

from slotease.db.database import Connection

Statement = str | sql.SQL | sql.Composed


async def fetch_one(
    conn: Connection, query: Statement, params: Params | None = None
) -> DictRow | None:
    cursor = await conn.execute(query, params)
    row: DictRow | None = await cursor.fetchone()
    return row


async def fetch_all(
    conn: Connection, query: Statement, params: Params | None = None
) -> list[DictRow]:
    cursor = await conn.execute(query, params)
    rows: list[DictRow] = await cursor.fetchall()
    return rows


async def fetch_row(conn: Connection, query: Statement, params: Params | None = None) -> DictRow:
    """The row of a statement that always returns one (an aggregate, `insert ... returning`)."""
    row = await fetch_one(conn, query, params)
    assert row is not None
    return row
