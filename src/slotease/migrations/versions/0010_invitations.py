"""Members by invitation; notifications only to users who deal with an organization.

Revision ID: 0010
Revises: 0008
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0010_invitations.up.sql")


def downgrade() -> None:
    run_sql_file("0010_invitations.down.sql")
