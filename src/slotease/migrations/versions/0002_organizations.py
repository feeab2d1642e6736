"""Organizations: look a user up by email for admins adding members.

Revision ID: 0002
Revises: 0001
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0002_organizations.up.sql")


def downgrade() -> None:
    run_sql_file("0002_organizations.down.sql")
