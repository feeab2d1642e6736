"""Run a versioned SQL file as a migration body, online or as an offline (`--sql`) script."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import context, op
from sqlalchemy import text

SQL_DIR = Path(__file__).parent / "sql"

# In offline mode the SQL goes through SQLAlchemy's text(), where ":name" is a bind parameter;
# escape those colons (but not PostgreSQL's "::" casts) so the script is emitted verbatim.
_BIND_LIKE = re.compile(r"(?<![:\\]):(?=[A-Za-z_])")


def run_sql_file(name: str) -> None:
    run_sql((SQL_DIR / name).read_text())


def run_sql(sql: str) -> None:
    """Run a multi-statement SQL script, online or into the offline script."""
    if context.is_offline_mode():
        op.execute(text(_BIND_LIKE.sub(r"\\:", sql)))
        return
    # Online, hand the script to psycopg untouched: with no parameters it runs the whole
    # multi-statement file without interpreting '%' or ':'.
    dbapi_connection = op.get_bind().connection.dbapi_connection
    assert dbapi_connection is not None
    dbapi_connection.cursor().execute(sql)
