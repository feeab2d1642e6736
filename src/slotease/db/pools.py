"""The two pools of a process, each on its own login role with its timeouts: the API's (anon
and authenticated only) and the worker's (jobs and maintenance, as service_role)."""

from __future__ import annotations

from redis.asyncio import Redis

from slotease.config import Settings
from slotease.db.catalogue import SessionVariable
from slotease.db.database import Database, session_options
from slotease.db.replicas import (
    MemoryWriters,
    ReadRouting,
    RecentWriters,
    RedisWriters,
    Replica,
    replica_name,
)
from slotease.db.urls import app_conninfo, strip_driver, worker_conninfo


def api_session_options(settings: Settings) -> str:
    return session_options(
        statement_timeout=settings.db_statement_timeout_seconds,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout_seconds,
    )


def worker_session_options(settings: Settings) -> str:
    return session_options(
        statement_timeout=settings.worker_statement_timeout_seconds,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout_seconds,
    )


def database_variables(settings: Settings) -> dict[SessionVariable, str]:
    """The settings the database's functions read, set in every transaction of both pools."""
    return {SessionVariable.WAITLIST_OFFER_MINUTES: str(settings.waitlist_offer_minutes)}


def api_database(settings: Settings) -> Database:
    pooled = settings.db_pooler == "transaction"
    return Database(
        app_conninfo(settings),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        # PgBouncer refuses a connection that sends startup options it does not know.
        options="" if pooled else api_session_options(settings),
        prepare=not pooled,
        variables=database_variables(settings),
        timeout=settings.pool_timeout_seconds,
    )


def worker_database(settings: Settings, *, max_size: int) -> Database:
    return Database(
        worker_conninfo(settings),
        min_size=1,
        max_size=max_size,
        options=worker_session_options(settings),
        variables=database_variables(settings),
    )


def read_routing(settings: Settings, primary: Database, redis: Redis | None) -> ReadRouting:
    """The API's replicas (none unless SLOTEASE_READ_DATABASE_URL is set), each with a pool of
    the API's size and timeouts, and where the read-your-writes marks are kept."""
    replicas = [
        Replica(
            name=replica_name(conninfo),
            database=Database(
                conninfo,
                min_size=1,
                max_size=settings.pool_max_size,
                options=api_session_options(settings),
                name=f"slotease-replica-{index}",
                timeout=settings.pool_timeout_seconds,
            ),
        )
        for index, conninfo in enumerate(strip_driver(url) for url in settings.read_database_urls)
    ]
    # A replica judged fresh at a check may fall behind until the next one.
    window = settings.replica_max_lag_seconds + settings.replica_check_seconds
    writers: RecentWriters = (
        RedisWriters(redis, window) if redis is not None else MemoryWriters(window)
    )
    return ReadRouting(
        primary,
        replicas,
        max_lag_seconds=settings.replica_max_lag_seconds,
        check_seconds=settings.replica_check_seconds,
        writers=writers,
    )
