"""The `slotease` command: serve, migrate, demo, users, db, jobs, gdpr."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from uvicorn import server as uvicorn_server
from uvicorn.supervisors.multiprocess import Process

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
        settings.resolved_keyring()
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
    since: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="With --sql: only the migrations after this revision (the one in the"
            " database's public.alembic_version), for a database migrated before.",
        ),
    ] = None,
) -> None:
    """Apply pending migrations (or print them as one SQL script with --sql)."""
    from slotease.migrations import runner

    if sql:
        if since is not None and not runner.is_known(since):
            typer.echo(f"configuration error: --from: unknown revision {since!r}", err=True)
            raise typer.Exit(2)
        typer.echo(runner.offline_sql(start=since))
        return
    from slotease.db.urls import owner_conninfo

    runner.upgrade(owner_conninfo(load_settings()))
    typer.echo("database is at the latest revision")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Server processes (default: one per core this process may use)."),
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Seed the demo data first.")] = False,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Run no job worker here (use `slotease worker`).")
    ] = False,
) -> None:
    """Apply pending migrations, then serve the API, its docs and the web front end, with a
    job worker in each server process unless --no-worker."""
    from slotease.db.embedded import AlreadyServing, serving

    settings = load_settings()
    if demo:
        _refuse_demo_in_production(settings)
    # A SIGTERM ends the process through its exit handlers (the embedded server stops with its
    # last user), where the default action would kill it on the spot.
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        with serving(settings.data_dir) if settings.database_url is None else nullcontext():
            _serve(
                settings,
                host=host,
                port=port,
                workers=workers or usable_cores(),
                demo=demo,
                no_worker=no_worker,
            )
    except AlreadyServing as busy:
        typer.echo(
            f"SlotEase is already running on the data directory {busy.data_dir}"
            f" (process {busy.holder or 'unknown'}): stop it first, or give this one another"
            " SLOTEASE_DATA_DIR.",
            err=True,
        )
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, a container's cpuset), not the
    machine's: one server process per core is what keeps them all busy without contention."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _serve(
    settings: Settings, *, host: str, port: int, workers: int, demo: bool, no_worker: bool
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess, multiprocess

    from slotease.db.urls import owner_conninfo
    from slotease.migrations import runner

    runner.upgrade(owner_conninfo(settings))
    _open_keyring(settings)
    if demo:
        _seed_demo(settings)
    # The server processes read their settings again: the environment is how they learn it.
    os.environ["SLOTEASE_RUN_WORKER"] = "false" if no_worker else "true"
    get_settings.cache_clear()
    typer.echo(f"SlotEase on http://{host}:{port} (API docs at /docs)")
    config = uvicorn.Config(
        "slotease.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # Every worker logs JSON; the app writes the access log itself, with the request id.
        log_config=logging_config(settings.log_level),
        access_log=False,
        ws_ping_interval=settings.ws_ping_interval_seconds,
        ws_ping_timeout=settings.ws_ping_timeout_seconds,
        # The server refuses an oversized frame before buffering it (close 1009), instead of
        # reading up to its 16 MiB default and leaving the check to the endpoint.
        ws_max_size=settings.realtime_max_message_bytes,
        # The realtime fan-out writes each event's frame, encoded once, to every socket
        # (realtime.transport); per-connection compression would mean one encoding and one
        # zlib context (tens of KB) per connection, for frames of a few hundred bytes.
        ws="slotease.realtime.transport:FanoutProtocol",
        ws_per_message_deflate=False,
    )
    if workers > 1:
        # The supervisor builds its workers by this name; each worker's server is then ours.
        multiprocess.Process = _WorkerProcess  # type: ignore[misc]
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    config.load_app()
    server = _Server(config)
    server.run()
    if not server.started:
        raise typer.Exit(3)


class _Server(uvicorn_server.Server):
    """Stops at once on SIGTERM or SIGINT while the app is still starting. uvicorn would wait
    for the startup to end, which lasts as long as the database is unreachable (the pool waits
    30 s for it), and cancelling it does not help: the pool's connection attempts outlive a
    cancellation. Nothing has been served yet, so there is nothing to finish: the exit
    handlers run (the embedded server stops with its last user) and the process ends."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.started:
            super().handle_exit(sig, frame)
            return
        logging.shutdown()
        atexit._run_exitfuncs()
        os._exit(128 + sig)


class _WorkerProcess(Process):
    """A worker of `serve --workers N` whose server is `_Server`, so that a SIGTERM sent while
    the app starts ends it at once there too (the supervisor waits for every worker)."""

    @property
    def server(self) -> uvicorn_server.Server:
        if self._server is None:
            self._server = _Server(config=self.config)
        return self._server


@cli.command()
def demo() -> None:
    """Apply pending migrations, then seed the demo data (idempotent) and print its accounts."""
    from slotease.db.urls import owner_conninfo
    from slotease.migrations import runner

    settings = load_settings()
    _refuse_demo_in_production(settings)
    runner.upgrade(owner_conninfo(settings))
    _open_keyring(settings)
    _seed_demo(settings)


def _open_keyring(settings: Settings) -> None:
    """Check the keyring against the database (registering new keys) and install it, or one
    line saying what is wrong and exit status 2."""
    import asyncio

    from slotease.db.pools import worker_database
    from slotease.keys.service import open_keyring

    async def run() -> None:
        database = worker_database(settings, max_size=1)
        await database.open()
        try:
            await open_keyring(settings, database, as_service=True)
        finally:
            await database.close()

    with _keyring_refusals():
        asyncio.run(run())


@contextmanager
def _keyring_refusals() -> Iterator[None]:
    """A keyring the database refuses (kit.crypto.KeyringError) as one line and status 2."""
    from slotease.kit.crypto import KeyringError

    try:
        yield
    except KeyringError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


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
    from slotease.db.urls import worker_conninfo
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
            _create_user(
                settings, worker_conninfo(settings), email, password, full_name, super_admin
            )
        )
    except Problem as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(1) from None
    role = "super admin" if super_admin else "user"
    typer.echo(f"created {role} {email} ({user_id})")


async def _create_user(
    settings: Settings, conninfo: str, email: str, password: str, full_name: str, super_admin: bool
) -> str:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from slotease.auth import service
    from slotease.db.database import SERVICE, act_as

    async with (
        await AsyncConnection.connect(conninfo, autocommit=True, row_factory=dict_row) as conn,
        conn.transaction(),
    ):
        # The same role sign-up runs as, so the operator's path obeys the same grants.
        await act_as(conn, SERVICE)
        user = await service.create_user(
            conn, settings, email=email, password=password, full_name=full_name
        )
        if super_admin:
            await service.make_platform_admin(conn, user["id"])
    return str(user["id"])


db = typer.Typer(help="Database maintenance, monitoring and tuning.", no_args_is_help=True)
cli.add_typer(db, name="db")


@db.command("maintenance")
def db_maintenance() -> None:
    """Run every scheduled maintenance task once: partitions, retention, views, ANALYZE."""
    from datetime import UTC, datetime

    from slotease.ops import maintenance

    settings = load_settings()

    async def run(database: Any) -> list[str]:
        report = await maintenance.run_all(database, settings, datetime.now(UTC))
        return report.lines()

    for line in _with_worker_database(settings, run):
        typer.echo(line)


@db.command("backup")
def db_backup(
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="A new directory for the backup (default: SLOTEASE_DATA_DIR/backups/<time>).",
        ),
    ] = None,
) -> None:
    """Back up the database (pg_dump -Fc) with a manifest: checksum, schema revision, server."""
    from datetime import UTC, datetime

    from slotease.db.urls import owner_conninfo
    from slotease.ops import backup

    settings = load_settings()
    directory = to or backup.default_directory(settings.data_dir, datetime.now(UTC))
    try:
        manifest = backup.backup(owner_conninfo(settings), directory)
    except backup.BackupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"backed up {manifest.database} at revision {manifest.schema_revision} to {directory}"
        f" ({manifest.size_bytes} bytes, sha256 {manifest.sha256})"
    )


@db.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="A directory `slotease db backup` wrote.")],
) -> None:
    """Restore a backup into the configured database, which must be empty."""
    from slotease.db.urls import owner_conninfo
    from slotease.migrations import runner
    from slotease.ops import backup

    settings = load_settings()
    try:
        manifest = backup.restore(owner_conninfo(settings), path)
    except backup.BackupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"restored {manifest.database} at revision {manifest.schema_revision}")
    if manifest.schema_revision != runner.head():
        typer.echo(f"run `slotease migrate` to bring it to revision {runner.head()}")


@db.command("stats")
def db_stats() -> None:
    """Print connections, the slowest queries (pg_stat_statements) and the largest tables."""
    import asyncio

    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from slotease.db.urls import owner_conninfo
    from slotease.ops import monitoring

    conninfo = owner_conninfo(load_settings())

    async def run() -> list[str]:
        async with await AsyncConnection.connect(
            conninfo, autocommit=True, row_factory=dict_row
        ) as conn:
            return await monitoring.stats_report(conn)

    for line in asyncio.run(run()):
        typer.echo(line)


@db.command("tune")
def db_tune(
    apply: Annotated[
        bool, typer.Option("--apply", help="ALTER SYSTEM the settings and reload the server.")
    ] = False,
    max_connections: Annotated[int, typer.Option(min=10, help="Connections to plan for.")] = 100,
) -> None:
    """Print server settings recommended for this machine's memory (apply them with --apply)."""
    import asyncio
    import os

    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from slotease.db.urls import owner_conninfo
    from slotease.ops import monitoring

    settings = load_settings()
    recommended = monitoring.recommended_settings(
        monitoring.machine_memory_bytes(), os.cpu_count() or 1, max_connections
    )
    for name, value in recommended.items():
        restart = "  (needs a restart)" if name in monitoring.RESTART_SETTINGS else ""
        typer.echo(f"{name} = {value}{restart}")
    if not apply:
        return

    async def run() -> None:
        async with await AsyncConnection.connect(
            owner_conninfo(settings), autocommit=True, row_factory=dict_row
        ) as conn:
            await monitoring.apply_settings(conn, recommended)

    asyncio.run(run())
    typer.echo("applied with ALTER SYSTEM and reloaded; restart for the settings marked so")


@cli.command()
def worker(
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            help="Only these queues (repeatable): interactive, webhooks, maintenance,"
            " analytics, bulk. Without it, every queue by priority, and"
            " SLOTEASE_WORKER_INTERACTIVE_CONCURRENCY slots more for the interactive one.",
        ),
    ] = None,
) -> None:
    """Run the job worker alone (notifications, reminders, periodic tasks) until stopped."""
    import asyncio

    with _keyring_refusals():
        asyncio.run(_run_worker(load_settings(), queue or None))


async def _run_worker(settings: Settings, queues: list[str] | None) -> None:
    from slotease.db.pools import worker_database
    from slotease.jobs.worker import interactive_lane, job_app, job_slots, worker_options
    from slotease.kit.events import EventBus

    db = worker_database(settings, max_size=job_slots(settings) + 1)
    await db.open()
    try:
        async with (
            job_app(settings, db, EventBus()) as app,
            interactive_lane(app, settings, queues),
        ):
            await app.run_worker_async(
                **worker_options(settings, queues=queues, install_signal_handlers=True)
            )
    finally:
        await db.close()


jobs_cli = typer.Typer(help="Inspect and retry background jobs.", no_args_is_help=True)
cli.add_typer(jobs_cli, name="jobs")


@jobs_cli.command("failed")
def jobs_failed() -> None:
    """List the jobs that failed for good: id, task, queue, attempts, arguments."""
    import asyncio
    import json

    from slotease.jobs import service

    async def run() -> list[service.FailedJob]:
        async with _jobs_app(load_settings()) as app:
            return await service.failed_jobs(app)

    for job in asyncio.run(run()):
        typer.echo(f"{job.id}\t{job.task}\t{job.queue}\t{job.attempts}\t{json.dumps(job.args)}")


@jobs_cli.command("retry")
def jobs_retry(job_id: Annotated[int, typer.Argument(help="The id `jobs failed` shows.")]) -> None:
    """Queue a failed job again, to run now."""
    import asyncio

    from slotease.jobs import service

    async def run() -> None:
        async with _jobs_app(load_settings()) as app:
            await service.retry_failed(app, job_id)

    try:
        asyncio.run(run())
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"job {job_id} queued again")


gdpr = typer.Typer(help="Data-subject requests: export and erasure.", no_args_is_help=True)
cli.add_typer(gdpr, name="gdpr")


@gdpr.command("export")
def gdpr_export(
    email: Annotated[str, typer.Argument(help="The account's address.")],
) -> None:
    """Print every record about the person as JSON (what `GET /v1/me/export` gives them)."""
    import json

    from fastapi.encoders import jsonable_encoder

    from slotease.privacy import service

    async def run(db: Any) -> Any:
        return await service.export_account(db, await service.user_id_of(db, email))

    records = _with_worker_database(load_settings(), run)
    typer.echo(json.dumps(jsonable_encoder(records), ensure_ascii=False, indent=2))


@gdpr.command("erase")
def gdpr_erase(
    email: Annotated[str, typer.Argument(help="The account's address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase the person: bookings given up, sessions ended, personal fields erased everywhere
    (what `DELETE /v1/me` does)."""
    from slotease.kit.events import EventBus
    from slotease.privacy import service

    if not yes:
        typer.confirm(f"Erase {email} for good?", abort=True)
    settings = load_settings()

    async def run(db: Any) -> Any:
        user_id = await service.user_id_of(db, email)
        # Nothing in this process listens: what the cancellations cause goes out by jobs.
        return user_id, await service.erase_account(db, EventBus(), settings, user_id)

    user_id, counts = _with_worker_database(settings, run)
    typer.echo(f"erased {user_id}")
    for kind, n in counts.items():
        typer.echo(f"{kind}: {n}")


def _with_worker_database(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """`work(database)` on a connection of the worker's role; a problem is one line and exit
    status 1."""
    import asyncio

    from slotease.db.pools import worker_database
    from slotease.kit.problems import Problem

    async def run() -> Any:
        database = worker_database(settings, max_size=1)
        await database.open()
        try:
            return await work(database)
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except Problem as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(1) from None


@asynccontextmanager
async def _jobs_app(settings: Settings) -> AsyncIterator[Any]:
    from slotease.jobs.worker import connector, jobs

    with jobs.replace_connector(connector(settings)) as app:
        async with app.open_async():
            yield app


keys_cli = typer.Typer(help="Encryption keys of the sensitive fields.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")


@keys_cli.command("generate")
def keys_generate(
    kid: Annotated[
        str, typer.Argument(help="The new key's id: letters, digits, '-' or '_', unique.")
    ],
) -> None:
    """Print a new key as `kid:base64key`, to put first in SLOTEASE_ENCRYPTION_KEYS."""
    from slotease.kit.crypto import KeyringError, generate_key

    try:
        typer.echo(generate_key(kid))
    except KeyringError as exc:
        typer.echo(f"invalid input: {exc}", err=True)
        raise typer.Exit(2) from None


@keys_cli.command("rotate")
def keys_rotate(
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10000, help="Rows per transaction.")
    ] = 500,
) -> None:
    """Re-encrypt every value not under the first key of SLOTEASE_ENCRYPTION_KEYS, online in
    short batches; when none is left, the other keys are retired and may be removed (exit
    status 1 while rows busy during the run still hold older keys: run it again)."""
    import asyncio

    from slotease.db.pools import worker_database
    from slotease.keys import service

    settings = load_settings()

    async def run() -> service.Rotation:
        database = worker_database(settings, max_size=1)
        await database.open()
        try:
            keyring = await service.open_keyring(settings, database, as_service=True)
            return await service.rotate(database, keyring, batch_size=batch_size)
        finally:
            await database.close()

    with _keyring_refusals():
        report = asyncio.run(run())
    for line in report.lines():
        typer.echo(line)
    if report.remaining:
        raise typer.Exit(1)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
