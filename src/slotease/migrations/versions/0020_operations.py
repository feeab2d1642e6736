"""Operations: replicas and backups.

Revision ID: 0020
Revises: 0019
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0020_operations.up.sql")


def downgrade() -> None:
    run_sql_file("0020_operations.down.sql")
