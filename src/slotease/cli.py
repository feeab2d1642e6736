"""The `slotease` command: serve, migrate, demo, users."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from slotease.config import ConfigurationError, Settings, describe_validation_error, get_settings

cli = typer.Typer(
    name="slotease",
    help="Appointments and live queues: the SlotEase service and its operations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def load_settings() -> Settings:
    """The settings, or one line naming the bad one and exit status 2."""
    try:
        settings = get_settings()
        settings.resolved_jwt_secret()
    except (ValidationError, ConfigurationError) as exc:
        typer.echo(f"configuration error: {describe_validation_error(exc)}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level)
    return settings


@cli.command()
def migrate(
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL script instead of applying it.")
    ] = False,
) -> None:
    """Apply pending migrations (or print them as one SQL script with --sql)."""
    from slotease.migrations import runner

    if sql:
        typer.echo(runner.offline_sql())
        return
    from slotease.db.urls import owner_conninfo

    runner.upgrade(owner_conninfo(load_settings()))
    typer.echo("database is at the latest revision")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Seed the demo data first.")] = False,
) -> None:
    """Apply pending migrations, then serve the API, its docs and the web front end."""
    import uvicorn

    from slotease.db.urls import owner_conninfo
    from slotease.migrations import runner

    settings = load_settings()
    runner.upgrade(owner_conninfo(settings))
    if demo:
        from slotease.demo import seed_demo

        typer.echo(seed_demo(settings))
    typer.echo(f"SlotEase on http://{host}:{port} (API docs at /docs)")
    uvicorn.run(
        "slotease.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
    )


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
