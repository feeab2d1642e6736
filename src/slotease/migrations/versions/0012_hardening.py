"""Hardening of realtime access checks and other review findings.

Revision ID: 0012
Revises: 0011
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0012_hardening.up.sql")


def downgrade() -> None:
    run_sql_file("0012_hardening.down.sql")
