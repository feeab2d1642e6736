"""Job queues and priorities: interactive before bulk, retries last.

Revision ID: 0015
Revises: 0014
"""

from slotease.migrations.sqlfile import run_sql_file

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0015_job_priorities.up.sql")


def downgrade() -> None:
    run_sql_file("0015_job_priorities.down.sql")
