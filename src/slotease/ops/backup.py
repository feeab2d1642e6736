"""Logical backups of the configured database (`slotease db backup|restore`).

A backup is a directory holding `database.dump` (pg_dump's custom format) and `manifest.json`:
the dump's SHA-256, the schema revision it holds and the server it came from. A restore goes
into an empty database only, refuses a dump whose checksum does not match or whose revision this
code does not know (a newer SlotEase made it), and creates the roles the dump's grants and
policies name, since roles belong to the cluster and are not in a database's dump.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from slotease.db.embedded import embedded_bin_dir
from slotease.migrations import runner

DUMP = "database.dump"
MANIFEST = "manifest.json"
FORMAT = 1

# The roles of the head revision with their attributes and memberships (0001 creates them,
# 0011 moves service_role from slotease_app to slotease_worker), created where the cluster
# lacks them.
ROLES = {
    "anon": "nologin noinherit",
    "authenticated": "nologin noinherit",
    "service_role": "nologin noinherit bypassrls",
    "slotease_app": "login noinherit",
    "slotease_worker": "login noinherit",
}
MEMBERSHIPS_SQL = "grant anon, authenticated to slotease_app; grant service_role to slotease_worker"

# Relations a fresh database has none of outside the system schemas.
_USER_RELATIONS_SQL = """
select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
"""


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: str
    database: str
    schema_revision: str | None
    server_version: str
    pg_dump_version: str
    sha256: str
    size_bytes: int

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        try:
            data = json.loads((directory / MANIFEST).read_text())
            return cls(**data)
        except FileNotFoundError:
            raise BackupError(f"{directory} holds no {MANIFEST}: not a SlotEase backup") from None
        except (ValueError, TypeError) as exc:
            raise BackupError(f"{directory / MANIFEST} is not a valid manifest: {exc}") from None


@dataclass(frozen=True)
class Server:
    version: str
    major: int
    database: str
    schema_revision: str | None


def inspect(conninfo: str) -> Server:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # The statement always returns one row.
        [(version, major, database, migrated)] = conn.execute(
            "select current_setting('server_version'),"
            " current_setting('server_version_num')::int / 10000, current_database(),"
            " to_regclass('public.alembic_version') is not null"
        ).fetchall()
        revision = None
        if migrated:
            found = conn.execute("select version_num from public.alembic_version").fetchone()
            revision = found[0] if found else None
    return Server(version, major, database, revision)


def client_program(name: str, server_major: int) -> Path:
    """`name` (pg_dump, pg_restore) of the server's major version: the embedded package's own,
    else Debian's, else the one on PATH when it is at least as new as the server."""
    candidates: list[Path | None] = [
        embedded_bin_dir(server_major),
        Path(f"/usr/lib/postgresql/{server_major}/bin"),
    ]
    for directory in candidates:
        if directory is not None and (directory / name).is_file():
            return directory / name
    on_path = shutil.which(name)
    if on_path is not None and _major_of(Path(on_path)) >= server_major:
        return Path(on_path)
    raise BackupError(
        f"no {name} for PostgreSQL {server_major}: install its client programs"
        f" (Debian: postgresql-client-{server_major})"
    )


def _major_of(program: Path) -> int:
    found = re.search(r"(\d+)(?:\.\d+)?", _run([program, "--version"]))
    return int(found.group(1)) if found else 0


def _run(argv: list[str | Path], conninfo: str | None = None) -> str:
    """Run a client program; `conninfo` becomes its `--dbname` with the password passed in
    the environment instead, where other local users cannot read it (they can see argv)."""
    env = None
    if conninfo is not None:
        params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items()}
        password = params.pop("password", None)
        argv = [*argv, f"--dbname={make_conninfo(**params)}"]
        env = os.environ | ({"PGPASSWORD": password} if password else {})
    # No shell: the arguments are passed as they are, and the programs are PostgreSQL's own.
    done = subprocess.run(  # noqa: S603
        [str(arg) for arg in argv], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout


def _ensure_roles(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = conn.execute(
        "select rolname from pg_roles where rolname = any(%(names)s)", {"names": list(ROLES)}
    )
    existing = {row[0] for row in rows.fetchall()}
    for name, attributes in ROLES.items():
        if name not in existing:
            conn.execute(sql.SQL("create role {} " + attributes).format(sql.Identifier(name)))
    conn.execute(MEMBERSHIPS_SQL)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def default_directory(data_dir: Path, now: datetime) -> Path:
    return data_dir / "backups" / now.strftime("%Y%m%dT%H%M%SZ")


def backup(conninfo: str, directory: Path) -> Manifest:
    """Dump the database of `conninfo` into `directory` (new, or empty) with its manifest."""
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty: give a new directory")
    server = inspect(conninfo)
    pg_dump = client_program("pg_dump", server.major)
    directory.mkdir(parents=True, exist_ok=True)
    dump = directory / DUMP
    _run([pg_dump, "--format=custom", f"--file={dump}"], conninfo)
    manifest = Manifest(
        format=FORMAT,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        database=server.database,
        schema_revision=server.schema_revision,
        server_version=server.version,
        pg_dump_version=_run([pg_dump, "--version"]).strip(),
        sha256=sha256_of(dump),
        size_bytes=dump.stat().st_size,
    )
    (directory / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def restore(conninfo: str, directory: Path) -> Manifest:
    """Restore the backup in `directory` into the empty database of `conninfo`, in one
    transaction: a failure leaves the database as empty as it was."""
    manifest = Manifest.read(directory)
    if manifest.format != FORMAT:
        raise BackupError(f"{directory} is a backup of format {manifest.format}, not {FORMAT}")
    dump = directory / DUMP
    if not dump.is_file():
        raise BackupError(f"{directory} holds no {DUMP}")
    if sha256_of(dump) != manifest.sha256:
        raise BackupError(f"{dump} does not match the checksum of its manifest: it is damaged")
    if manifest.schema_revision is not None and not runner.is_known(manifest.schema_revision):
        raise BackupError(
            f"the backup's schema revision {manifest.schema_revision} is newer than this"
            f" SlotEase's ({runner.head()}): restore it with the version that made it"
        )
    server = inspect(conninfo)
    source_major = int(manifest.server_version.split(".", 1)[0])
    if source_major > server.major:
        raise BackupError(
            f"the backup comes from PostgreSQL {manifest.server_version}: restore it into"
            f" PostgreSQL {source_major} or newer, not {server.version}"
        )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(_USER_RELATIONS_SQL).fetchone()
        if row is not None and row[0] > 0:
            raise BackupError(
                f"database {server.database} is not empty ({row[0]} relations): restore into"
                " a new, empty database"
            )
        _ensure_roles(conn)
    pg_restore = client_program("pg_restore", server.major)
    # The restoring user owns what it restores, as the migrating user owns a migrated schema.
    _run([pg_restore, "--single-transaction", "--exit-on-error", "--no-owner", dump], conninfo)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # A restore carries no planner statistics: without them the first queries plan blind.
        conn.execute("analyze")
    return manifest
