"""The in-process `slotease` runner of tests/cli, for the `slotease jobs` commands."""

from tests.cli.conftest import run_cli

__all__ = ["run_cli"]
