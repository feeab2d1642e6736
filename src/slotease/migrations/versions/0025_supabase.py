"""Supabase mode: profiles from Supabase Auth's users, erasure that leaves auth.* to it.

Revision ID: 0025
Revises: 0024
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0025_supabase.up.sql")


def downgrade() -> None:
    run_sql_file("0025_supabase.down.sql")
