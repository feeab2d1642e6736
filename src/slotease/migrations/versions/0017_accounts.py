"""Accounts: password change, recovery, verification, MFA.

Revision ID: 0017
Revises: 0016
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0017_accounts.up.sql")


def downgrade() -> None:
    run_sql_file("0017_accounts.down.sql")
