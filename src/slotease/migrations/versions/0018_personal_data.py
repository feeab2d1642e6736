"""Personal data: consents, erasure, retention, audit reading.

Revision ID: 0018
Revises: 0017
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0018_personal_data.up.sql")


def downgrade() -> None:
    run_sql_file("0018_personal_data.down.sql")
