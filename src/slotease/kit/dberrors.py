"""The database's refusals (trigger errors, constraint and policy violations) as problems.

Each feature keeps its own table of what a refusal means to its callers; this module only
matches the error against it, so an unknown refusal stays a server error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from slotease.kit.problems import Conflict, Forbidden, NotFound, Problem, Unprocessable

# A rule is keyed by SQLSTATE, or by (SQLSTATE, constraint name) to narrow it to one constraint.
RuleKey = str | tuple[str, str]
Refusal = Callable[[psycopg.Error], Problem]
P = ParamSpec("P")
R = TypeVar("R")

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"
INSUFFICIENT_PRIVILEGE = "42501"


class DatabaseUnavailable(Problem):
    """No connection to the database could be had or kept (it is down or restarting): the
    request changed nothing, and the pool reconnects by itself."""

    status, slug = 503, "database-unavailable"


def lost_the_database(exc: Exception) -> bool:
    """Whether `exc` says the database is out of reach rather than refusing a statement: the
    pool's wait for a connection ran out, a connection broke (no SQLSTATE), or the server
    refused connections or is shutting down (classes 08 and 57)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return isinstance(exc, PoolTimeout) or state is None or state[:2] in {"08", "57"}


def sentence(exc: psycopg.Error, default: str = "The change was refused.") -> str:
    """The database's own message, written as a sentence for the answer."""
    message = exc.diag.message_primary
    if not message:
        return default
    return message[:1].upper() + message[1:] + "."


@contextmanager
def refusals(rules: Mapping[RuleKey, Refusal]) -> Iterator[None]:
    """Raise the problem `rules` gives for a database error; a constraint-specific rule wins
    over its SQLSTATE's."""
    try:
        yield
    except psycopg.Error as exc:
        state = exc.sqlstate
        if state is None:
            raise
        constraint = exc.diag.constraint_name
        make = (rules.get((state, constraint)) if constraint else None) or rules.get(state)
        if make is None:
            raise
        raise make(exc) from None


def write_refusals(forbidden: str) -> dict[RuleKey, Refusal]:
    """The refusals of an organization's admin writes: a check constraint our validation
    missed (422), a policy's WITH CHECK (403, `forbidden`)."""
    return {
        CHECK_VIOLATION: lambda _: Unprocessable("A value is out of the allowed range."),
        INSUFFICIENT_PRIVILEGE: lambda _: Forbidden(forbidden),
    }


def refused_as(
    rules: Mapping[RuleKey, Refusal],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """A repository function whose database refusals are raised as the problems of `rules`
    (see `refusals`), for a feature whose statements share one table of rules."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
            with refusals(rules):
                return await function(*args, **kwargs)

        return translated

    return decorate


def body_fields(route: object) -> frozenset[str]:
    """The top-level fields of the JSON body `route` (a FastAPI route) reads, by alias too."""
    model = getattr(getattr(route, "body_field", None), "field_info", None)
    annotation = getattr(model, "annotation", None)
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return frozenset()
    fields = annotation.model_fields
    return frozenset(fields) | {f.alias for f in fields.values() if f.alias}


def missing_reference(exc: psycopg.Error, fields: frozenset[str]) -> Problem:
    """A foreign key naming a row that does not exist. PostgreSQL hides the key's value from a
    caller who may not read the referenced rows, so the constraint's name tells which columns
    it covers (`<table>_<columns>_fkey`): one the request body carries (`fields`) is a 422
    naming it, otherwise the id came from the path and the answer is 404. A row that others
    still reference, on the other side of the same kind of constraint, is a 409."""
    detail = exc.diag.message_detail or ""
    referenced = re.search(r'table "([^"]+)"', detail)
    table = referenced[1].replace("_", " ") if referenced else "other rows"
    if "is still referenced" in detail:
        return Conflict(f"It is still in use by {table}.")
    thing = table.removesuffix("s") if referenced else "referenced row"
    constraint = exc.diag.constraint_name or ""
    columns = f"_{constraint.removeprefix(exc.diag.table_name or '').removesuffix('_fkey')}_"
    named = sorted(field for field in fields if f"_{field}_" in columns)
    if not named:
        return NotFound(f"No such {thing}.")
    return Unprocessable(
        f"No such {thing}.",
        errors=[{"loc": ["body", field], "msg": f"No such {thing}."} for field in named],
    )


def install_database_refusals(app: FastAPI) -> None:
    """What no feature's own rules caught: the database out of reach (503), a reference to a row that does not exist, and a
    value the database cannot hold (NUL in text, a number or date out of range), which are
    the caller's input, never a server error."""

    @app.exception_handler(psycopg.Error)
    async def _refused(request: Request, exc: psycopg.Error) -> JSONResponse:
        if lost_the_database(exc):
            return DatabaseUnavailable(
                "The database is unavailable; try again shortly.", headers={"Retry-After": "1"}
            ).response()
        if exc.sqlstate == FOREIGN_KEY_VIOLATION:
            return missing_reference(exc, body_fields(request.scope.get("route"))).response()
        if isinstance(exc, psycopg.DataError):
            # Raised by the driver (NUL in text) or the server (SQLSTATE class 22); the
            # message could quote the value, so it stays out of the answer.
            return Unprocessable("A value is out of range or not valid for its field.").response()
        # The generic handler logs it and answers 500.
        raise exc
