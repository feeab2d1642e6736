"""Least privilege: split login roles, caller-checked SECURITY DEFINER functions, audit redaction, database-side refusals.

Revision ID: 0011
Revises: 0010
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0011_privileges.up.sql")


def downgrade() -> None:
    run_sql_file("0011_privileges.down.sql")
