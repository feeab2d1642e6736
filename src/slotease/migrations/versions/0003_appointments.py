"""Appointments: capacity and status rules in the database, the slot read path.

Revision ID: 0003
Revises: 0002
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0003_appointments.up.sql")


def downgrade() -> None:
    run_sql_file("0003_appointments.down.sql")
