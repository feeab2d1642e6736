"""The database's refusals (trigger errors, constraint and policy violations) as problems.

Each feature keeps its own table of what a refusal means to its callers; this module only
matches the error against it, so an unknown refusal stays a server error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import psycopg

from slotease.kit.problems import Problem

# A rule is keyed by SQLSTATE, or by (SQLSTATE, constraint name) to narrow it to one constraint.
RuleKey = str | tuple[str, str]
Refusal = Callable[[psycopg.Error], Problem]

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"
INSUFFICIENT_PRIVILEGE = "42501"


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
