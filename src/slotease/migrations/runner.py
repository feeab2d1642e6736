"""Programmatic Alembic: the CLI and the tests migrate through these functions."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

HERE = Path(__file__).parent


def _config(conninfo: str | None = None, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["conninfo"] = conninfo
    return config


def upgrade(conninfo: str, revision: str = "head") -> None:
    command.upgrade(_config(conninfo), revision)


def downgrade(conninfo: str, revision: str = "base") -> None:
    command.downgrade(_config(conninfo), revision)


def offline_sql(revision: str = "head", *, start: str | None = None) -> str:
    """The SQL script for `revision`, for a database the CLI cannot reach (Supabase SQL editor):
    from an empty database, or from revision `start` on."""
    buffer = io.StringIO()
    target = revision if start is None else f"{start}:{revision}"
    command.upgrade(_config(output=buffer), target, sql=True)
    return buffer.getvalue()


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def is_known(revision: str) -> bool:
    """Whether `revision` is one of this code's (a database at an unknown one is newer)."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False
