"""Freshness: a database-maintained availability version bumped by every change that alters slots.

Revision ID: 0013
Revises: 0012
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0013_freshness.up.sql")


def downgrade() -> None:
    run_sql_file("0013_freshness.down.sql")
