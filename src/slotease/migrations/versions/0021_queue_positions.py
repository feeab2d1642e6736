"""Reserved for the change that fills it.

Revision ID: 0021
Revises: 0020
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0021_queue_positions.up.sql")


def downgrade() -> None:
    run_sql_file("0021_queue_positions.down.sql")
