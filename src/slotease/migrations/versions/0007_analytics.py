"""Analytics: domain events, materialized views behind tenant-checked functions, reports and
the maintenance entry points.

Revision ID: 0007
Revises: 0006
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0007_analytics.up.sql")


def downgrade() -> None:
    run_sql_file("0007_analytics.down.sql")
