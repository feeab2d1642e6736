"""The pool and the per-request transaction that carries the caller's identity into PostgreSQL.

Every statement goes through `Database.transaction`, which switches to one of the Supabase
roles and publishes the caller's claims for `auth.uid()`/`auth.jwt()`: `anon` or
`authenticated` on the API's pool, `service_role` on the worker's (see db.pools). Row-level security then decides what the statement sees; nothing
in Python filters rows by tenant.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.errors import QueryCanceled
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from slotease.db.catalogue import SessionVariable
from slotease.kit.problems import Problem

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Checks:
    """A statement run right after the identity is set, in the same round trip, whose one row
    `verify` reads before anything else is answered (it raises to refuse the caller): how the
    layer above checks what the policies alone do not (a session still live, a key valid)."""

    statement: sql.Composed
    params: Mapping[str, Any]
    verify: Callable[[DictRow], None]


class Reader(Protocol):
    """Runs one read-only statement as the caller in one round trip (`Database.read`, bound
    to the caller by auth.deps): what a hot read's repository takes instead of a connection."""

    async def __call__(
        self, statement: sql.Composed, params: Mapping[str, Any]
    ) -> list[DictRow]: ...


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
    (the process's settings that functions and triggers read). In pipeline mode the statement
    is only queued: it leaves with whatever follows it."""
    params = identity_params(identity)
    extra = list((variables or {}).items())
    for index, (name, value) in enumerate(extra):
        params |= {f"name_{index}": name, f"value_{index}": value}
    statement = IDENTITY_SQL + "".join(_VARIABLE_SQL.format(i) for i in range(len(extra)))
    await conn.execute(statement, params)


async def _checked(cursor: AsyncCursor[DictRow] | None, checks: Checks | None) -> None:
    if cursor is not None and checks is not None:
        row = await cursor.fetchone()
        assert row is not None  # a select without FROM returns its one row
        checks.verify(row)


def session_options(*, statement_timeout: float, idle_in_transaction_timeout: float) -> str:
    """libpq `options` setting the timeouts (in seconds, 0 for none) when a connection starts,
    so they hold for every statement without a round trip of their own."""
    return (
        f"-c statement_timeout={round(statement_timeout * 1000)}"
        f" -c idle_in_transaction_session_timeout={round(idle_in_transaction_timeout * 1000)}"
    )


@asynccontextmanager
async def _ending(conn: Connection) -> AsyncIterator[None]:
    """Roll back the transaction `conn` is in when the block fails (a committed or never
    begun one is left alone), without hiding the failure."""
    try:
        yield
    except BaseException:
        try:
            await conn.rollback()
        except Exception as failure:  # a broken connection: the pool discards it
            log.warning("rollback failed: %s", failure)
        raise


@contextmanager
def _timeouts_answered() -> Iterator[None]:
    try:
        yield
    except QueryCanceled as exc:
        raise StatementTimedOut(
            "The database took too long to answer; try again shortly.",
            headers={"Retry-After": "1"},
        ) from exc


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
    async def transaction(
        self, identity: DbIdentity, checks: Checks | None = None
    ) -> AsyncIterator[Connection]:
        """One transaction acting as `identity`, refused first by `checks` if they say so;
        committed when the block exits cleanly. BEGIN, the identity and the checks leave in
        one round trip (pipeline mode), which ends before the block runs: its statements then
        raise their errors where they are executed, as usual. A statement that outran the
        pool's `statement_timeout` ends it as a 503 problem."""
        with _timeouts_answered():
            async with self.pool.connection() as conn, _ending(conn):
                async with conn.pipeline():
                    checked = await self._begin(conn, identity, checks)
                await _checked(checked, checks)
                yield conn
                await conn.commit()

    async def read(
        self,
        identity: DbIdentity,
        statement: sql.Composed,
        params: Mapping[str, Any],
        checks: Checks | None = None,
    ) -> list[DictRow]:
        """The rows of one read-only `statement` run as `identity` in a transaction of its
        own: BEGIN, the identity, the checks, the statement and COMMIT in one round trip. The
        checks are read before the rows, so a refused caller gets its refusal and never the
        rows (computed by a statement that writes nothing)."""
        with _timeouts_answered():
            async with self.pool.connection() as conn, _ending(conn):
                async with conn.pipeline():
                    checked = await self._begin(conn, identity, checks)
                    cursor = await conn.execute(statement, params)
                    await conn.execute("commit")
                await _checked(checked, checks)
                rows: list[DictRow] = await cursor.fetchall()
                return rows

    async def _begin(
        self, conn: Connection, identity: DbIdentity, checks: Checks | None
    ) -> AsyncCursor[DictRow] | None:
        """Queue BEGIN, the identity and the checks on `conn`, in pipeline mode. psycopg's own
        `transaction()` would sync the pipeline after its BEGIN: one round trip more."""
        await conn.execute("begin")
        await act_as(conn, identity, self.variables)
        return None if checks is None else await conn.execute(checks.statement, checks.params)

    async def ping(self) -> bool:
        async with self.pool.connection(timeout=2) as conn:
            await conn.execute("select 1")
        return True

    def stats(self) -> dict[str, int]:
        return dict(self.pool.get_stats())
