"""Fuzz the running API against its own OpenAPI document with schemathesis: `make fuzz`.

Builds a fresh database (migrated, with the demo data: organizations, services, queues,
appointments), starts the real server in a subprocess on a free port, signs in as a demo admin
and lets schemathesis generate requests for a bounded time with a fixed seed. Any server error,
undeclared status or content type, or body that does not match its schema fails the run.

    python -m scripts.fuzz [--max-time 180] [--seed 20261203]

The PostgreSQL server comes from SLOTEASE_FUZZ_DATABASE_URL (a superuser URL of its maintenance
database); without it, the embedded server of the test suite (.data/test) is used.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import LiteralString

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from slotease.db.embedded import embedded_database_url
from slotease.demo import DEMO_DOMAIN, DEMO_PASSWORD, ORGANIZATIONS
from slotease.migrations import runner

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
JWT_SECRET = "fuzz-secret-" + "x" * 40
# Thousands of requests from one client in a few minutes: the limits must not answer instead.
RATE_LIMIT = "1000000/hour"
ADMIN = f"admin@{ORGANIZATIONS[0].slug}.{DEMO_DOMAIN}"


def server_conninfo() -> str:
    url = os.environ.get("SLOTEASE_FUZZ_DATABASE_URL")
    if url:
        return make_conninfo(url)
    return make_conninfo(embedded_database_url(Path(".data/test")))


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new database on `server`, migrated to head; dropped afterwards."""
    name = f"slotease_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(server, dbname=name)
        runner.upgrade(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SLOTEASE_ENV": "test",
        "DATABASE_URL": database_url,
        "SLOTEASE_DATA_DIR": str(data_dir),
        "SLOTEASE_JWT_SECRET": JWT_SECRET,
        "SLOTEASE_RATE_LIMIT_API_KEY": RATE_LIMIT,
        "SLOTEASE_RATE_LIMIT_USER": RATE_LIMIT,
        "SLOTEASE_RATE_LIMIT_ANON": RATE_LIMIT,
        "SLOTEASE_RUN_WORKER": "false",
        "SLOTEASE_LOG_LEVEL": "WARNING",
    }


@contextmanager
def running_server(env: dict[str, str], port: int) -> Iterator[str]:
    """The real ASGI server in a subprocess, answering on its base URL."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "slotease.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    # The commands are this script's own, built from fixed arguments.
    process = subprocess.Popen(command, env=env)  # noqa: S603
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}")
            try:
                if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready within 60 s")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def admin_token(base_url: str) -> str:
    grant = {"grant_type": "password", "email": ADMIN, "password": DEMO_PASSWORD}
    answer = httpx.post(f"{base_url}/v1/auth/token", json=grant, timeout=10)
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


# Ids named in paths, queries and bodies, and the seeded rows they are drawn from most of the
# time (the rest are generated), so that requests reach past "not found" into each route.
SEEDED_IDS: dict[str, LiteralString] = {
    "org_id": "select id from public.organizations where slug = %(slug)s",
    "organization_id": "select id from public.organizations where slug = %(slug)s",
    "service_id": "select s.id from public.services s join public.organizations o"
    " on o.id = s.organization_id where o.slug = %(slug)s",
    "queue_id": "select q.id from public.queues q join public.organizations o"
    " on o.id = q.organization_id where o.slug = %(slug)s",
    "appointment_id": "select a.id from public.appointments a join public.organizations o"
    " on o.id = a.organization_id where o.slug = %(slug)s order by a.starts_at desc limit 20",
    "ticket_id": "select t.id from public.tickets t join public.organizations o"
    " on o.id = t.organization_id where o.slug = %(slug)s order by t.created_at desc limit 20",
}
SEEDED_SHARE = 0.8


def seeded_ids_config(database_url: str, path: Path) -> Path:
    """A schemathesis.toml binding each id parameter to a dictionary of seeded ids."""
    lines = []
    with psycopg.connect(database_url) as conn:
        for name, query in SEEDED_IDS.items():
            rows = conn.execute(query, {"slug": ORGANIZATIONS[0].slug}).fetchall()
            values = ", ".join(f'"{row[0]}"' for row in rows)
            lines.append(f"[dictionaries.{name}]\nvalues = [{values}]\n")
    lines.append("[parameters]")
    lines += [
        f'"{location}.{name}" = {{ dictionary = "{name}", probability = {SEEDED_SHARE} }}'
        for name in SEEDED_IDS
        for location in ("path", "query", "body")
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def schemathesis(
    base_url: str, token: str, *, config: Path, max_time: int, seed: int, report: Path
) -> int:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--header",
        f"Authorization: Bearer {token}",
        "--max-time",
        str(max_time),
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    return subprocess.run(command, check=False).returncode  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=int, default=180, help="Seconds of fuzzing.")
    parser.add_argument("--seed", type=int, default=20261203, help="Generation seed.")
    parser.add_argument(
        "--report", type=Path, default=Path(".data/fuzz"), help="Where the JUnit report goes."
    )
    args = parser.parse_args()
    data_dir = args.report.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with fresh_database(server_conninfo()) as database_url:
        env = server_environment(database_url, data_dir)
        # Seeded as `slotease demo` seeds it: with the keyring the server then opens.
        slotease = Path(sys.executable).with_name("slotease")
        subprocess.run([str(slotease), "demo"], env=env, check=True)  # noqa: S603
        with running_server(env, free_port()) as base_url:
            token = admin_token(base_url)
            config = seeded_ids_config(database_url, data_dir / "schemathesis.toml")
            return schemathesis(
                base_url,
                token,
                config=config,
                max_time=args.max_time,
                seed=args.seed,
                report=data_dir,
            )


if __name__ == "__main__":
    sys.exit(main())
