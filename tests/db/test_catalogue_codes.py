"""db.catalogue against the migrated database: every custom SQLSTATE the functions raise and
every session variable they read or set is listed, and nothing listed is gone."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

import slotease
from slotease.db.catalogue import SESSION_VARIABLES, SQLSTATES, SqlState, refusals_of
from slotease.kit.problems import Conflict, NotFound
from tests.factories import Owner

SRC = Path(slotease.__file__).parent
# Only the functions of our migrations: procrastinate's and PostgreSQL's own are not ours.
_SOURCES = (
    "select p.prosrc from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
    " where n.nspname in ('app', 'auth', 'public') and p.proname not like 'procrastinate%'"
)


def _function_sources(owner: Owner) -> str:
    return "\n".join(row[0] for row in owner.execute(_SOURCES).fetchall())


def _is_postgres_code(code: str) -> bool:
    try:
        psycopg.errors.lookup(code)
    except KeyError:
        return False
    return True


def test_every_custom_sqlstate_raised_is_catalogued(owner: Owner) -> None:
    raised = set(re.findall(r"errcode\s*=\s*'([0-9A-Z]{5})'", _function_sources(owner)))
    custom = {code for code in raised if not _is_postgres_code(code)}
    assert custom == set(SQLSTATES)
    # All of class SE: none left in a class PostgreSQL uses (P0409 was in PL/pgSQL's).
    assert all(code.startswith("SE") for code in custom)


def test_every_session_variable_the_functions_use_is_catalogued(owner: Owner) -> None:
    sources = _function_sources(owner)
    read = set(re.findall(r"current_setting\('([^']+)'", sources))
    set_in_sql = set(re.findall(r"set_config\('([^']+)'", sources))
    python = "\n".join(path.read_text() for path in SRC.rglob("*.py"))
    set_in_python = set(re.findall(r"set_config\('([^']+)'", python))
    assert "slotease.waitlist_offer_minutes" in read
    assert read | set_in_sql | set_in_python <= set(SESSION_VARIABLES)
    # Nothing stale: each listed variable is read or set somewhere, by SQL or through the
    # catalogue (db.database sets those the pools are given).
    assert set(SESSION_VARIABLES) <= read | set_in_sql | set_in_python


@pytest.mark.parametrize(
    ("state", "problem", "detail"),
    [
        (SqlState.SLOT_FULL, Conflict, "The slot is full."),
        (SqlState.QUEUE_NOT_FOUND, NotFound, "No such queue."),
        (SqlState.INVALID_TRANSITION, Conflict, "A ticket cannot go from served to waiting."),
    ],
)
def test_a_catalogued_refusal_answers_with_its_problem(
    owner: Owner, state: SqlState, problem: type, detail: str
) -> None:
    with pytest.raises(psycopg.Error) as raised:
        owner.execute(
            "do $$ begin raise exception 'a ticket cannot go from served to waiting'"
            f" using errcode = '{state.value}'; end $$"
        )
    answer = refusals_of(state)[state](raised.value)
    assert type(answer) is problem
    assert answer.detail == detail
