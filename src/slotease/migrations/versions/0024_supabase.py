"""Supabase mode: profiles from Supabase Auth's users, erasure that leaves auth.* to it.

Revision ID: 0024
Revises: 0023
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0024_supabase.up.sql")


def downgrade() -> None:
    run_sql_file("0024_supabase.down.sql")
