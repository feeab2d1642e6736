"""Calendars and the waitlist: appointment revisions, feed tokens, offers made by the database.

Revision ID: 0005
Revises: 0004
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0005_calendar_waitlist.up.sql")


def downgrade() -> None:
    run_sql_file("0005_calendar_waitlist.down.sql")
