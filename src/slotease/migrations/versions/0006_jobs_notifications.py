"""Jobs (procrastinate's schema, locked down) and the notification plumbing around them.

Revision ID: 0006
Revises: 0005
"""

from procrastinate.schema import SchemaManager

from slotease.migrations.sqlfile import run_sql, run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # procrastinate's objects are unqualified: pin them to public whatever the owner's path.
    run_sql("set local search_path = public")
    # Read from the installed package, so the schema always matches the worker's queries.
    # Its few tabs become spaces, as the offline script writes them, so that both ways of
    # migrating store the same function bodies.
    run_sql(SchemaManager.get_schema().replace("\t", "    "))
    run_sql_file("0006_jobs_notifications.up.sql")


def downgrade() -> None:
    run_sql_file("0006_jobs_notifications.down.sql")
