"""Sign-in protection: per-account and per-address login throttling.

Revision ID: 0009
Revises: 0008
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_sign_in.up.sql")


def downgrade() -> None:
    run_sql_file("0009_sign_in.down.sql")
