"""The `slotease` command: serve, migrate, demo, users."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from slotease.config import ConfigurationError, Settings, describe_validation_error, get_settings
from slotease.kit.logs import configure_logging, logging_config

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
    configure_logging(settings.log_level)
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
    if demo:
        _refuse_demo_in_production(settings)
    runner.upgrade(owner_conninfo(settings))
    if demo:
        _seed_demo(settings)
    typer.echo(f"SlotEase on http://{host}:{port} (API docs at /docs)")
    uvicorn.run(
        "slotease.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # Every worker logs JSON; the app writes the access log itself, with the request id.
        log_config=logging_config(settings.log_level),
        access_log=False,
    )


@cli.command()
def demo() -> None:
    """Apply pending migrations, then seed the demo data (idempotent) and print its accounts."""
    from slotease.db.urls import owner_conninfo
    from slotease.migrations import runner

    settings = load_settings()
    _refuse_demo_in_production(settings)
    runner.upgrade(owner_conninfo(settings))
    _seed_demo(settings)


def _refuse_demo_in_production(settings: Settings) -> None:
    # The demo accounts have published passwords: never in a production deployment.
    if settings.env == "production":
        typer.echo(
            "configuration error: SLOTEASE_ENV: the demo data is never seeded in production",
            err=True,
        )
        raise typer.Exit(2)


def _seed_demo(settings: Settings) -> None:
    from slotease.demo import seed_demo

    typer.echo(seed_demo(settings))


users = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
cli.add_typer(users, name="users")


@users.command("create")
def create_user(
    email: Annotated[str, typer.Argument(help="The address the user signs in with.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 8 characters; asked for when not given.",
        ),
    ],
    full_name: Annotated[str, typer.Option("--full-name", help="The name shown to others.")] = "",
    super_admin: Annotated[
        bool, typer.Option("--super-admin", help="Make the user a platform operator.")
    ] = False,
) -> None:
    """Create a user who can sign in at once (for operators and first set-up)."""
    import asyncio

    from pydantic import EmailStr, TypeAdapter

    from slotease.auth.schemas import FullName, Password
    from slotease.db.urls import owner_conninfo
    from slotease.kit.problems import Problem

    settings = load_settings()
    try:
        email = TypeAdapter(EmailStr).validate_python(email)
        TypeAdapter(Password).validate_python(password)
        full_name = TypeAdapter(FullName).validate_python(full_name) if full_name else ""
    except ValidationError as exc:
        typer.echo(f"invalid input: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    try:
        user_id = asyncio.run(
            _create_user(owner_conninfo(settings), email, password, full_name, super_admin)
        )
    except Problem as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(1) from None
    role = "super admin" if super_admin else "user"
    typer.echo(f"created {role} {email} ({user_id})")


async def _create_user(
    conninfo: str, email: str, password: str, full_name: str, super_admin: bool
) -> str:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from slotease.auth import service

    async with (
        await AsyncConnection.connect(conninfo, autocommit=True, row_factory=dict_row) as conn,
        conn.transaction(),
    ):
        # The same role sign-up runs as, so the operator's path obeys the same grants.
        await conn.execute("set local role service_role")
        user = await service.register_user(
            conn, email=email, password=password, full_name=full_name, phone=None
        )
        if super_admin:
            await service.make_platform_admin(conn, user["id"])
    return str(user["id"])


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
