"""Shared pieces of the benchmarks: a migrated bench database, seeding, pgbench, statistics.

Benchmarks run against the PostgreSQL at BENCH_SERVER_URL (default: the local server on
127.0.0.1:5432 as `postgres`) and report ratios against a peer measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from slotease.migrations import runner

SERVER_URL = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_database(name: str) -> str:
    """Drop and recreate `name`, migrate it to head; return the owner's conninfo."""
    drop_database(name)
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    owner = make_conninfo(SERVER_URL, dbname=name)
    runner.upgrade(owner)
    return owner


def drop_database(name: str) -> None:
    """Give back the disk of a bench database (the big ones should not outlive their run)."""
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def app_role_conninfo(owner: str) -> str:
    return make_conninfo(owner, user="slotease_app")


def worker_role_conninfo(owner: str) -> str:
    return make_conninfo(owner, user="slotease_worker")


def seed_organizations(owner: str, organizations: int, services_per_org: int) -> list[uuid.UUID]:
    """Organizations with services and a Monday-to-Friday week each; returns the org ids."""
    with psycopg.connect(owner, autocommit=True) as conn:
        rows = conn.execute(
            """
            insert into public.organizations (name, slug, kind, timezone, location)
            select 'Bench clinic ' || g, 'bench-clinic-' || g, 'clinic', 'Europe/Paris',
                   point(2 + g / 1000.0, 48 + g / 1000.0)
            from generate_series(1, %s) g
            returning id
            """,
            (organizations,),
        ).fetchall()
        org_ids = [row[0] for row in rows]
        conn.execute(
            """
            insert into public.services (organization_id, name, duration_minutes, capacity,
                                         slot_interval_minutes, price, currency)
            select o.id, 'Service ' || s, 30, 2, 30, 40, 'EUR'
            from public.organizations o, generate_series(1, %s) s
            """,
            (services_per_org,),
        )
        conn.execute(
            """
            insert into public.service_working_hours (organization_id, service_id, weekday,
                                                      start_time, end_time)
            select s.organization_id, s.id, d, h.start_time, h.end_time
            from public.services s, generate_series(0, 4) d,
                 (values (time '08:30', time '12:30'), (time '13:30', time '17:00'))
                   as h(start_time, end_time)
            """
        )
        conn.execute("analyze")
    return org_ids


@contextmanager
def indexes_deferred(conn: psycopg.Connection, tables: list[str]) -> Iterator[None]:
    """Drop the indexes and keys of `tables` (partitioned parents included, which drops them
    on every partition) and the foreign keys that point at them, and build them again on
    exit: a bulk load into unindexed tables then one sort per index is several times faster
    than maintaining every index row by row. Run it on a database being seeded, nobody else's."""
    oids = [conn.execute("select %s::regclass::oid", (t,)).fetchone()[0] for t in tables]  # type: ignore[index]
    constraints = conn.execute(
        "select conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype"
        " from pg_constraint where conparentid = 0 and"
        " (confrelid = any(%(t)s) or (conrelid = any(%(t)s) and contype in ('p', 'u', 'x')))"
        " order by contype = 'f' desc",  # foreign keys first: they depend on the keys
        {"t": oids},
    ).fetchall()
    indexes = conn.execute(
        "select indexrelid::regclass::text, pg_get_indexdef(indexrelid) from pg_index i"
        " where indrelid = any(%(t)s) and not exists"
        " (select 1 from pg_constraint c where c.conindid = i.indexrelid)",
        {"t": oids},
    ).fetchall()
    for table, name, _, _ in constraints:
        conn.execute(sql.SQL("alter table {} drop constraint {}").format(
            sql.SQL(table), sql.Identifier(name)))  # fmt: skip
    for index, _ in indexes:
        conn.execute(sql.SQL("drop index {}").format(sql.SQL(index)))
    yield
    conn.execute("set maintenance_work_mem = '1GB'")
    for _, definition in indexes:
        # The parent's definition says ON ONLY (the parent alone); built ON the parent it is
        # built on every partition too.
        conn.execute(definition.replace(" ON ONLY ", " ON ", 1))
    for table, name, definition, _ in reversed(constraints):
        conn.execute(sql.SQL("alter table {} add constraint {} {}").format(
            sql.SQL(table), sql.Identifier(name), sql.SQL(definition)))  # fmt: skip
    conn.execute("reset maintenance_work_mem")


@dataclass(frozen=True)
class Stats:
    label: str
    throughput: float
    p50_ms: float
    p95_ms: float

    def row(self) -> str:
        return f"| {self.label} | {self.throughput:,.0f} | {self.p50_ms:.2f} | {self.p95_ms:.2f} |"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pgbench(
    label: str,
    conninfo: str,
    script: str,
    *,
    clients: int,
    seconds: int,
    protocol: str = "prepared",
) -> Stats:
    """Run `script` with pgbench (one thread per client up to 2 threads) and read every
    transaction's latency from its log for p50/p95. The simple protocol is for SQL that holds
    a colon pgbench would take for a variable (such as `to_char(t, 'HH24:MI')`)."""
    with tempfile.TemporaryDirectory() as tmp:
        script_path = Path(tmp) / "bench.sql"
        script_path.write_text(script)
        prefix = str(Path(tmp) / "log")
        result = subprocess.run(
            [
                "pgbench",
                "-n",
                "-M",
                protocol,
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(seconds),
                "-f",
                str(script_path),
                "-l",
                "--log-prefix",
                prefix,
                "-d",
                conninfo,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        latencies = [
            int(line.split()[2]) / 1000.0
            for log in Path(tmp).glob("log*")
            for line in log.read_text().splitlines()
        ]
    tps = float(re.search(r"tps = ([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    return Stats(label, tps, percentile(latencies, 0.5), percentile(latencies, 0.95))


def wrk(
    label: str,
    url: str,
    *,
    connections: int,
    seconds: int,
    headers: dict[str, str] | None = None,
    requests_lua: str = "",
    timeout_seconds: int = 2,
) -> Stats:
    """Load `url` with wrk (one thread) and read throughput and p50/p95 from its Lua summary.
    `requests_lua` may define wrk's `request()` to vary each request. A request unanswered
    after `timeout_seconds` (wrk's default: 2) counts as failed."""
    lua = requests_lua + (
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON{\\"rps\\":%f,\\"p50\\":%f,\\"p95\\":%f,\\"errors\\":%d}\\n",'
        " summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,"
        " latency:percentile(95) / 1000, summary.errors.status + summary.errors.connect"
        " + summary.errors.timeout))\n"
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_seconds}s"]
    args += ["-s", script.name]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    result = subprocess.run([*args, url], capture_output=True, text=True, check=True)
    os.unlink(script.name)
    summary = json.loads(result.stdout.split("JSON", 1)[1])
    if summary["errors"]:
        raise RuntimeError(f"{label}: {summary['errors']} failed requests\n{result.stdout}")
    return Stats(label, summary["rps"], summary["p50"], summary["p95"])


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with psycopg.connect(SERVER_URL) as conn:
        version = conn.execute("show server_version").fetchone()
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"PostgreSQL {version[0] if version else '?'}"
    )


def median(values: list[float]) -> float:
    return statistics.median(values)


# The process behind each server a benchmark started, by its URL (for cpu_seconds).
PIDS: dict[str, int] = {}

# The compiled peer (shared/peers): the same statement served by Go's net/http and pgx.
PEER_BINARY = Path(os.environ.get("BENCH_PEER", "/tmp/peers-bin/sqlhttp"))
PEER_BUILD = Path(__file__).resolve().parents[2] / "shared" / "peers" / "build.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def sql_peer(
    conninfo: str, statement: str, *, role: str = "anon", claims: str = '{"role":"anon"}'
) -> Iterator[str]:
    """The compiled peer serving `statement` (one `$1`, one json value) as `role` with
    `claims`, built first if missing; yields the URL to add `?p=<param>` to."""
    if not PEER_BINARY.exists():
        subprocess.run(["bash", str(PEER_BUILD), str(PEER_BINARY.parent)], check=True)
    port = free_port()
    env = {
        **os.environ,
        "PEER_DSN": conninfo,
        "PEER_SQL": statement,
        "PEER_ROLE": role,
        "PEER_CLAIMS": claims,
        "PEER_PORT": str(port),
        "PEER_POOL": "20",
    }
    process = subprocess.Popen([str(PEER_BINARY)], env=env)
    url = f"http://127.0.0.1:{port}/q"
    PIDS[url] = process.pid
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the peer did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) spent so far by `pid` and every live descendant of it: what a
    server costs per request, which the machine's other load leaves nearly unchanged where
    throughput and latency are not."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        process = int(stat.parent.name)
        parents[process] = int(fields[1])
        times[process] = (int(fields[11]) + int(fields[12])) / tick
    family = {pid}
    grew = True
    while grew:
        grew = False
        for process, parent in parents.items():
            if parent in family and process not in family:
                family.add(process)
                grew = True
    return sum(times.get(process, 0.0) for process in family)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
