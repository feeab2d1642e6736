"""Alembic environment: revisions are SQL files; the connection is the schema owner's."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_offline() -> None:
    context.configure(
        dialect_name="postgresql",
        # With the "named" style, "%" needs no escaping, so format() strings stay verbatim.
        dialect_opts={"paramstyle": "named"},
        literal_binds=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    conninfo = config.attributes["conninfo"]
    import psycopg

    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(conninfo),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
