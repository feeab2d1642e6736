"""Webhooks: a cheap check whether an organization listens to an event.

Revision ID: 0008
Revises: 0007
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0008_webhooks.up.sql")


def downgrade() -> None:
    run_sql_file("0008_webhooks.down.sql")
