"""Error and session-variable catalogue: the last-admin refusal gets a SQLSTATE of class SE.

Revision ID: 0016
Revises: 0015
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0016_catalogue.up.sql")


def downgrade() -> None:
    run_sql_file("0016_catalogue.down.sql")
