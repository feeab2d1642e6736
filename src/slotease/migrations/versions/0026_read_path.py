"""Reserved for the change that fills it.

Revision ID: 0026
Revises: 0025
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0026_read_path.up.sql")


def downgrade() -> None:
    run_sql_file("0026_read_path.down.sql")
