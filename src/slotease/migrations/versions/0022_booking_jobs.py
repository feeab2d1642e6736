"""A list of jobs enqueued in one statement, each checked as a single one (issue 14).

Revision ID: 0022
Revises: 0021
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0022_booking_jobs.up.sql")


def downgrade() -> None:
    run_sql_file("0022_booking_jobs.down.sql")
