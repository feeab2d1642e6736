"""The two pools of a process, each on its own login role with its timeouts: the API's (anon
and authenticated only) and the worker's (jobs and maintenance, as service_role)."""

from __future__ import annotations

from slotease.config import Settings
from slotease.db.database import Database, session_options
from slotease.db.urls import app_conninfo, worker_conninfo


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


def api_database(settings: Settings) -> Database:
    pooled = settings.db_pooler == "transaction"
    return Database(
        app_conninfo(settings),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        # PgBouncer refuses a connection that sends startup options it does not know.
        options="" if pooled else api_session_options(settings),
        prepare=not pooled,
    )


def worker_database(settings: Settings, *, max_size: int) -> Database:
    return Database(
        worker_conninfo(settings),
        min_size=1,
        max_size=max_size,
        options=worker_session_options(settings),
    )
