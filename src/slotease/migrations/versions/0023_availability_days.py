"""Availability by day: appointment changes move on the versions of the days they touch.

Revision ID: 0023
Revises: 0022
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0023_availability_days.up.sql")


def downgrade() -> None:
    run_sql_file("0023_availability_days.down.sql")
