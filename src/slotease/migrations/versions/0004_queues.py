"""Queues: daily ticket numbers, ticket status rules, grace-period no-shows, check-in.

Revision ID: 0004
Revises: 0003
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0004_queues.up.sql")


def downgrade() -> None:
    run_sql_file("0004_queues.down.sql")
