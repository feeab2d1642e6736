"""Daily figures per service and per queue kept by triggers in the writer's transaction.

Revision ID: 0014
Revises: 0013
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0014_rollups.up.sql")


def downgrade() -> None:
    run_sql_file("0014_rollups.down.sql")
