"""Every custom SQLSTATE the database raises and every session variable through which SQL and
Python talk: one list, checked against the migrated database by tests/db/test_catalogue_codes.py
and described in docs/architecture.md ("Errors and SQLSTATEs", "Session variables").

Custom SQLSTATEs are of class SE (SlotEase): a class PostgreSQL leaves to implementations, so
none of its own codes can ever collide with ours."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from slotease.kit.dberrors import Refusal, RuleKey, sentence
from slotease.kit.problems import Conflict, NotFound, Problem


class SqlState(StrEnum):
    SLOT_FULL = "SECAP"
    INVALID_CHANGE = "SESTA"
    REPEATABLE_READ = "SEISO"
    CHECK_IN_REFUSED = "SECHK"
    QUEUE_NOT_FOUND = "SEQNF"
    INVALID_TRANSITION = "SETKT"
    LAST_ADMIN = "SEADM"


@dataclass(frozen=True)
class Raised:
    meaning: str
    raised_by: str
    # The problem a caller gets; None for a code that only a bug can raise (a 500).
    problem: type[Problem] | None
    # The answer's detail; None to pass on the database's own message, which names the case.
    detail: str | None = None


SQLSTATES: dict[SqlState, Raised] = {
    SqlState.SLOT_FULL: Raised(
        "the slot has no free place left", "app.enforce_capacity", Conflict,
        "The slot is full.",
    ),
    SqlState.INVALID_CHANGE: Raised(
        "an appointment change its status does not allow (a move once not booked, a status"
        " out of order, feedback before completion)",
        "app.check_appointment_change, app.check_feedback", Conflict,
    ),
    SqlState.REPEATABLE_READ: Raised(
        "appointments written in a REPEATABLE READ transaction, where the capacity lock could"
        " not see the latest bookings", "app.enforce_capacity", None,
    ),
    SqlState.CHECK_IN_REFUSED: Raised(
        "a check-in for another queue's service, a non-booked appointment or outside the"
        " check-in window", "app.check_in_appointment", Conflict,
    ),
    SqlState.QUEUE_NOT_FOUND: Raised(
        "a ticket for a queue that is closed or the caller cannot see", "app.next_ticket_number",
        NotFound, "No such queue.",
    ),
    SqlState.INVALID_TRANSITION: Raised(
        "a ticket status change out of order", "app.check_ticket_change", Conflict,
    ),
    SqlState.LAST_ADMIN: Raised(
        "a membership change that would leave an organization without an admin",
        "app.keep_one_admin", Conflict, "An organization must keep at least one admin.",
    ),
}  # fmt: skip


def refusals_of(*states: SqlState) -> dict[RuleKey, Refusal]:
    """The `kit.dberrors.refusals` rules that answer each of `states` with its problem."""

    def rule(raised: Raised) -> Refusal:
        problem = raised.problem
        assert problem is not None, f"{raised.meaning}: no caller is answered this"
        return lambda exc: problem(raised.detail or sentence(exc))

    return {state: rule(SQLSTATES[state]) for state in states}


class SessionVariable(StrEnum):
    ROLE = "role"
    JWT_CLAIMS = "request.jwt.claims"
    JWT_CLAIM = "request.jwt.claim"
    JWT_CLAIM_SUB = "request.jwt.claim.sub"
    JWT_CLAIM_ROLE = "request.jwt.claim.role"
    API_KEY_HASH = "slotease.api_key_hash"
    WAITLIST_OFFER_MINUTES = "slotease.waitlist_offer_minutes"
    WAITLIST_OFFERS = "slotease.waitlist_offers"
    MOVED_APPOINTMENT = "slotease.moved_appointment"
    AUDIT_REWRITE = "slotease.audit_rewrite"
    ROTATING_KEYS = "slotease.rotating_keys"
    TRANSACTION_ISOLATION = "transaction_isolation"


@dataclass(frozen=True)
class Variable:
    meaning: str
    set_by: str
    read_by: str


SESSION_VARIABLES: dict[SessionVariable, Variable] = {
    SessionVariable.ROLE: Variable(
        "the Supabase role the transaction acts as", "db.database (every transaction); the"
        " cached availability read (appointments.repository)",
        "app.called_by_api_role",
    ),
    SessionVariable.JWT_CLAIMS: Variable(
        "the caller's claims as JSON",
        "db.database; app.check_in_appointment, acting for a customer who checks in",
        "auth.uid(), auth.jwt(), auth.role()",
    ),
    SessionVariable.JWT_CLAIM: Variable(
        "the claims under the other name Supabase's auth.jwt() reads", "nothing of ours",
        "auth.jwt()",
    ),
    SessionVariable.JWT_CLAIM_SUB: Variable(
        "older PostgREST's user id claim", "older PostgREST, never us", "auth.uid()",
    ),
    SessionVariable.JWT_CLAIM_ROLE: Variable(
        "older PostgREST's role claim", "older PostgREST, never us", "auth.role()",
    ),
    SessionVariable.API_KEY_HASH: Variable(
        "the hash of the API key the request presented, empty for none", "db.database",
        "app.api_key_grant, app.member_org_ids, app.admin_org_ids",
    ),
    SessionVariable.WAITLIST_OFFER_MINUTES: Variable(
        "how long a waitlist offer holds its place (SLOTEASE_WAITLIST_OFFER_MINUTES; 15 when"
        " unset)", "db.database (every transaction, from the settings)",
        "app.offer_waitlist_places",
    ),
    SessionVariable.WAITLIST_OFFERS: Variable(
        "the offers made so far in this transaction, as a JSON array, for Python to announce",
        "app.offer_waitlist_places (appends)",
        "appointments.repository.take_offers_made (reads and empties)",
    ),
    SessionVariable.MOVED_APPOINTMENT: Variable(
        "the appointment whose move the analytics trigger already recorded, so it is counted"
        " once", "app.record_appointment_event", "app.record_appointment_event",
    ),
    SessionVariable.AUDIT_REWRITE: Variable(
        "'on' while erasure or retention blanks personal fields of the append-only audit log",
        "app.erase_user, app.apply_text_retention (transaction-local)",
        "app.reject_audit_change",
    ),
    SessionVariable.ROTATING_KEYS: Variable(
        "'on' while `slotease keys rotate` re-seals rows, which keep their updated_at",
        "keys.repository (transaction-local)",
        "app.touch_updated_at",
    ),
    SessionVariable.TRANSACTION_ISOLATION: Variable(
        "PostgreSQL's own isolation level", "the client (BEGIN ISOLATION LEVEL ...)",
        "app.enforce_capacity",
    ),
}  # fmt: skip
