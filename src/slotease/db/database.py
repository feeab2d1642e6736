"""The pool and the per-request transaction that carries the caller's identity into PostgreSQL.

Every statement goes through `Database.transaction`, which switches to one of the Supabase
roles and publishes the caller's claims for `auth.uid()`/`auth.jwt()`: `anon` or
`authenticated` on the API's pool, `service_role` on the worker's (see db.pools). Row-level security then decides what the statement sees; nothing
in Python filters rows by tenant.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.errors import QueryCanceled
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from slotease.db.catalogue import SessionVariable
from slotease.kit.problems import Problem

DbRole = Literal["anon", "authenticated", "service_role"]
Connection = AsyncConnection[DictRow]


class StatementTimedOut(Problem):
    """A statement cancelled by `statement_timeout`: the database is busy, not the request
    wrong, so the caller may try again."""

    status, slug = 503, "database-timeout"


@dataclass(frozen=True)
class DbIdentity:
    """Who a transaction acts as, in the terms the database policies understand."""

    role: DbRole
    claims: dict[str, Any] = field(default_factory=dict)
    # A verified API key is passed as its hash, so a policy can only ever match a key whose
    # secret the caller presented (see app.api_key_role()).
    api_key_hash: str | None = None


ANONYMOUS = DbIdentity(role="anon", claims={"role": "anon"})
SERVICE = DbIdentity(role="service_role", claims={"role": "service_role"})

IDENTITY_SQL = (
    "select set_config('role', %(role)s, true), set_config('request.jwt.claims', %(claims)s,"
    " true),"
    " set_config('slotease.api_key_hash', %(api_key_hash)s, true)"
)
# Each setting the database reads from Python (db.catalogue), in the same first statement.
_VARIABLE_SQL = ", set_config(%(name_{0})s, %(value_{0})s, true)"


def identity_params(identity: DbIdentity) -> dict[str, str]:
    """The parameters of IDENTITY_SQL for `identity`."""
    return {
        "role": identity.role,
        "claims": json.dumps(identity.claims),
        "api_key_hash": identity.api_key_hash or "",
    }


async def act_as(
    conn: Connection, identity: DbIdentity, variables: Mapping[SessionVariable, str] | None = None
) -> None:
    """Switch the open transaction of `conn` to `identity` until it ends, with `variables`
    (the process's settings that functions and triggers read)."""
    params = identity_params(identity)
    extra = list((variables or {}).items())
    for index, (name, value) in enumerate(extra):
        params |= {f"name_{index}": name, f"value_{index}": value}
    statement = IDENTITY_SQL + "".join(_VARIABLE_SQL.format(i) for i in range(len(extra)))
    await conn.execute(statement, params)


def session_options(*, statement_timeout: float, idle_in_transaction_timeout: float) -> str:
    """libpq `options` setting the timeouts (in seconds, 0 for none) when a connection starts,
    so they hold for every statement without a round trip of their own."""
    return (
        f"-c statement_timeout={round(statement_timeout * 1000)}"
        f" -c idle_in_transaction_session_timeout={round(idle_in_transaction_timeout * 1000)}"
    )


class Database:
    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 2,
        max_size: int = 20,
        options: str = "",
        variables: Mapping[SessionVariable, str] | None = None,
        name: str = "slotease",
        timeout: float = 30.0,
        prepare: bool = True,
    ) -> None:
        # Set in every transaction's first statement: the one place Python sets what the
        # database's functions read (see db.catalogue.SESSION_VARIABLES).
        self.variables = dict(variables or {})
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if options:
            kwargs["options"] = options
        if not prepare:
            # A pooler in transaction mode hands each transaction any server connection: a
            # statement prepared on one is missing on (or clashes with) the next.
            kwargs["prepare_threshold"] = None
        self.pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs=kwargs,
            connection_class=AsyncConnection[DictRow],
            name=name,
            # How long a request waits for a connection: while the database is down, each
            # waits this long before its 503.
            timeout=timeout,
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self, identity: DbIdentity) -> AsyncIterator[Connection]:
        """One transaction acting as `identity`; committed when the block exits cleanly. A
        statement that outran the pool's `statement_timeout` ends it as a 503 problem."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await act_as(conn, identity, self.variables)
                yield conn
        except QueryCanceled as exc:
            raise StatementTimedOut(
                "The database took too long to answer; try again shortly.",
                headers={"Retry-After": "1"},
            ) from exc

    async def ping(self) -> bool:
        async with self.pool.connection(timeout=2) as conn:
            await conn.execute("select 1")
        return True

    def stats(self) -> dict[str, int]:
        return dict(self.pool.get_stats())
