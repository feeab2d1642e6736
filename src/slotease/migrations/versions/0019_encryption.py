"""Encryption at rest.

Revision ID: 0019
Revises: 0018
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0019_encryption.up.sql")


def downgrade() -> None:
    run_sql_file("0019_encryption.down.sql")
