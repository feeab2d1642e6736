"""Reserved for the change that fills it.

Revision ID: 0024
Revises: 0023
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0024_scale.up.sql")


def downgrade() -> None:
    run_sql_file("0024_scale.down.sql")
