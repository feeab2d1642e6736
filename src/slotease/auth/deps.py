"""Request dependencies: the caller, and the transaction that acts as them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

from fastapi import Depends, Request

from slotease.auth import repository
from slotease.auth.principal import Principal, resolve_principal
from slotease.context import AppContext, app_context
from slotease.db.database import ANONYMOUS, Checks, Connection, Database, Reader
from slotease.db.queries import Row
from slotease.kit.clientaddress import client_address
from slotease.kit.events import after_commit_scope
from slotease.kit.problems import Forbidden, Unauthorized


async def _context(request: Request) -> AppContext:
    # Dependencies are coroutines on purpose: FastAPI runs a plain function in a thread pool,
    # a hop that cost more than everything else these do.
    return app_context(request)


ContextDep = Annotated[AppContext, Depends(_context)]


async def _client_address(request: Request, context: ContextDep) -> str:
    return client_address(request, context.settings)


ClientAddressDep = Annotated[str, Depends(_client_address)]


async def get_principal(request: Request, context: ContextDep) -> Principal:
    # Resolved once per request: the rate limiter may already have done it.
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is None:
        cached = resolve_principal(
            request, context.token_keys, context.settings.accepted_jwt_issuers
        )
        request.state.principal = cached
    return cached


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def caller_checks(context: AppContext, principal: Principal) -> Checks | None:
    """What the caller's credentials must pass before anything is answered, asked in the
    transaction's first round trip: an access token's session must still be live (a password
    change or reset revokes the other sessions, and their access tokens with them), and an API
    key valid, which also tells the rate limiter whether it may count the key apart."""
    key_hash = principal.identity.api_key_hash
    statement = repository.caller_checks(principal.session_id, key_hash is not None)
    if statement is None:
        return None

    def verify(row: Row) -> None:
        if "session_live" in row and not row["session_live"]:
            raise Unauthorized("The session has ended; sign in again.")
        if key_hash is not None:
            if not row["key_live"]:
                context.limiter.key_refused(key_hash)
                raise Unauthorized("The API key is not valid.")
            context.limiter.key_accepted(key_hash)

    return Checks(*statement, verify)


@asynccontextmanager
async def caller_transaction(
    context: AppContext, principal: Principal, db: Database | None = None
) -> AsyncIterator[Connection]:
    """A transaction acting as the caller on `db` (the primary by default), once the caller's
    credentials passed `caller_checks`."""
    checks = caller_checks(context, principal)
    async with (db or context.db).transaction(principal.identity, checks) as conn:
        yield conn


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def db_session(
    request: Request, principal: PrincipalDep, context: ContextDep
) -> AsyncIterator[Connection]:
    """One transaction per request on the primary, acting as the caller; committed before the
    response leaves (scope="function"), so a client never sees an answer whose change could
    still roll back. Transactional event handlers run last inside the transaction (jobs are
    enqueued there); work collected for after the commit (events, cache invalidation) runs
    once it succeeded. A committed change marks the caller for read-your-writes."""
    async with after_commit_scope(context.events) as after_commit:
        try:
            async with caller_transaction(context, principal) as conn:
                yield conn
                await after_commit.before_commit(conn)
        except Forbidden as refusal:
            raise await _with_mfa_reason(context, principal, refusal) from None
        if request.method not in SAFE_METHODS:
            await context.reads.wrote(principal.rate_limit_key)
        await after_commit.run()


class MfaEnrollmentRequired(Forbidden):
    slug = "mfa-enrollment-required"


async def _with_mfa_reason(
    context: AppContext, principal: Principal, refusal: Forbidden
) -> Forbidden:
    """A refusal to someone who is staff or admin of an organization requiring multi-factor
    sign-in they have not turned on says so: the policies treat them as a customer there,
    which alone would leave them guessing. Asked in a transaction of its own, since the
    refused one may have been aborted by the database."""
    if principal.user_id is None:
        return refusal
    async with context.db.transaction(principal.identity) as conn:
        blocked = await repository.mfa_blocked_org_ids(conn)
    if not blocked:
        return refusal
    names = ", ".join(str(org_id) for org_id in blocked)
    return MfaEnrollmentRequired(
        f"{refusal.detail} Organization {names} requires multi-factor sign-in of its staff"
        " and admins: turn it on (POST /v1/me/mfa) to act as staff or admin there."
    )


DbDep = Annotated[Connection, Depends(db_session, scope="function")]


async def read_database(principal: PrincipalDep, context: ContextDep) -> Database:
    """Where a read that tolerates replication lag goes (see db.replicas)."""
    return await context.reads.database_for(principal.rate_limit_key)


ReadDatabaseDep = Annotated[Database, Depends(read_database)]


async def read_session(
    principal: PrincipalDep, context: ContextDep, db: ReadDatabaseDep
) -> AsyncIterator[Connection]:
    """A read-only request's transaction, acting as the caller like `db_session`, on a replica
    that keeps up unless the caller has just written. Routes opt in for reads whose answer may
    be a moment old: never for bookings, queue calls or what decides a change."""
    async with caller_transaction(context, principal, db) as conn:
        yield conn


ReadDbDep = Annotated[Connection, Depends(read_session, scope="function")]


async def read_once(principal: PrincipalDep, context: ContextDep, db: ReadDatabaseDep) -> Reader:
    """For a hot read of one statement: runs it as the caller, checked like `read_session`, on
    the same database, in a transaction of its own that costs one round trip."""
    return partial(db.read, principal.identity, checks=caller_checks(context, principal))


ReadOnceDep = Annotated[Reader, Depends(read_once)]


async def require_user(principal: PrincipalDep) -> Principal:
    if principal.user_id is None:
        raise Unauthorized("Sign in to do this.")
    return principal


async def require_signed_in(principal: PrincipalDep) -> Principal:
    """A user or an API key."""
    if principal.is_anonymous:
        raise Unauthorized("Credentials are required.")
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]
SignedIn = Annotated[Principal, Depends(require_signed_in)]


async def service_session(context: ContextDep) -> AsyncIterator[Connection]:
    """A transaction as `anon`, for the few routes that act before anyone is signed in
    (sign-up, token exchange): they reach accounts and sessions only through the narrow
    functions of the database, and act as the user once the user proved who they are."""
    async with context.db.transaction(ANONYMOUS) as conn:
        yield conn


ServiceDbDep = Annotated[Connection, Depends(service_session, scope="function")]
