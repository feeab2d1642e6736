"""Run the `slotease` command in-process, isolated from the caller's environment and `.env`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

import pytest
from typer.testing import CliRunner, Result

from slotease.cli import cli
from slotease.config import get_settings
from tests.conftest import TEST_ENCRYPTION_KEYS

RunCli = Callable[..., Result]


@pytest.fixture(scope="session")
def run_cli(tmp_path_factory: pytest.TempPathFactory) -> RunCli:
    """`run_cli("demo", env={...})`: no setting leaks in from the environment or a `.env` file."""
    workdir = tmp_path_factory.mktemp("cli")
    runner = CliRunner()

    def run(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
        isolated: dict[str, str | None] = {
            name: None
            for name in os.environ
            if name.startswith(("SLOTEASE_", "SUPABASE_")) or name in ("DATABASE_URL", "REDIS_URL")
        }
        isolated["SLOTEASE_DATA_DIR"] = str(workdir / "data")
        isolated["SLOTEASE_ENCRYPTION_KEYS"] = TEST_ENCRYPTION_KEYS
        isolated.update(env or {})
        # Settings are cached per process: each run must read its own environment.
        get_settings.cache_clear()
        # The command configures logging on the runner's stderr, which is closed after the run.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.chdir(workdir)
                return runner.invoke(cli, list(args), env=isolated)
        finally:
            get_settings.cache_clear()
            root.handlers[:] = handlers
            root.setLevel(level)

    return run
