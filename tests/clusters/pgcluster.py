"""Throwaway PostgreSQL 15 clusters for the tests that need a whole server of their own: point-in-
time recovery, streaming standbys, PgBouncer, restarts under load. Each lives in a temporary
directory on a free port and is stopped by its fixture; Debian's binaries are used
(`SLOTEASE_PG_BIN` overrides the directory)."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

PG_BIN = Path(os.environ.get("SLOTEASE_PG_BIN", "/usr/lib/postgresql/15/bin"))
# PostgreSQL refuses to run as root; as root the clusters run as this account.
SERVER_ACCOUNT = "postgres"
SUPERUSER = "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_server_account(argv: Sequence[str]) -> list[str]:
    if os.geteuid() != 0:
        return list(argv)
    return ["runuser", "-u", SERVER_ACCOUNT, "--", *argv]


def hand_over(path: Path) -> Path:
    """Make `path` (a directory the test created) the server account's, as the server needs."""
    path.mkdir(parents=True, exist_ok=True)
    hand_over_file(path)
    path.chmod(0o700)
    return path


def hand_over_file(path: Path) -> None:
    """Make `path` the server account's (as root; otherwise it is already)."""
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVER_ACCOUNT)
        os.chown(path, account.pw_uid, account.pw_gid)


class ProgramFailed(RuntimeError):
    """A PostgreSQL program ended with an error; the message carries what it printed."""


def run_pg(binary: str, *args: str, timeout: float = 120) -> str:
    """One PostgreSQL program as the server account; its output, or ProgramFailed."""
    return run_as_server_account(str(PG_BIN / binary), *args, timeout=timeout)


def run_as_server_account(program: str, *args: str, timeout: float = 120) -> str:
    """Any program (the PITR scripts) as the server account, with `PG_BIN` set to the
    binaries in use; its output, or ProgramFailed."""
    argv = _as_server_account(["env", f"PG_BIN={PG_BIN}", program, *args])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        name = Path(program).name
        raise ProgramFailed(f"{name} {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


def scratch_directory() -> Path:
    """A new private directory the server account owns (pytest's own temporary directories are
    closed to other accounts)."""
    return hand_over(Path(tempfile.mkdtemp(prefix="slotease-cluster-")))


class Cluster:
    """One server: its data directory, port and log. Not started until `start()`."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log = data_dir.parent / f"{data_dir.name}.log"

    @classmethod
    def create(cls, root: Path, name: str = "primary", **settings: str) -> Cluster:
        """initdb a new cluster under `root` (a scratch_directory) with trust authentication and
        `settings` added."""
        cluster = cls(root / name)
        run_pg("initdb", "-D", str(cluster.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8")
        cluster.configure(
            listen_addresses="'127.0.0.1'",
            unix_socket_directories="''",
            fsync="off",
            **settings,
        )
        return cluster

    def configure(self, **settings: str) -> None:
        """Append settings to postgresql.conf (later lines win); values are written verbatim."""
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(lines)

    def url(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, dbname=dbname, user=user)

    def start(self, *, wait: bool = True) -> None:
        run_pg(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log),
            "-o", f"-p {self.port}", "-w" if wait else "-W", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            run_pg("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def kill(self) -> None:
        """The postmaster killed with SIGKILL, as a crash would (its backends follow)."""
        pid = self.postmaster_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while self.running():
                time.sleep(0.05)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def base_backup(self, root: Path, name: str, *, standby: bool = False) -> Cluster:
        """A copy of this running cluster by pg_basebackup; with `standby`, configured to stream
        from it (`-R`). The copy gets its own port and is not started."""
        copy = Cluster(root / name)
        args = ["-D", str(copy.data_dir), "-d", self.url(), "-X", "stream", "-c", "fast"]
        run_pg("pg_basebackup", *args, *(["-R"] if standby else []), timeout=300)
        return copy


# Every table with rows of its own (leaf partitions, not their parents). Materialized views are
# left out: derived, and a restore refreshes them, where the source may hold them stale.
_CONTENT_RELATIONS_SQL = """
select format('%I.%I', n.nspname, c.relname) from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\\_toast%' order by 1
"""


def table_fingerprints(conninfo: str) -> dict[str, tuple[int, str]]:
    """Each table's row count and an md5 of its rows in a fixed order: two databases with
    equal fingerprints hold the same data."""
    fingerprints: dict[str, tuple[int, str]] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for (name,) in conn.execute(_CONTENT_RELATIONS_SQL).fetchall():
            row = conn.execute(
                f"select count(*), md5(coalesce(string_agg(t::text, E'\\n'"
                f" order by t::text collate \"C\"), '')) from {name} t"
            ).fetchone()
            assert row is not None
            fingerprints[name] = (row[0], row[1])
    return fingerprints


PGBOUNCER = Path(os.environ.get("SLOTEASE_PGBOUNCER", "/usr/sbin/pgbouncer"))


class PgBouncer:
    """PgBouncer in transaction mode in front of `cluster`: every database of the cluster under
    its own name, for the users given (trust authentication, as the cluster's)."""

    def __init__(
        self, root: Path, cluster: Cluster, *, users: Sequence[str], pool_size: int = 10
    ) -> None:
        self.port = free_port()
        self.directory = hand_over(root / f"pgbouncer-{self.port}")
        self.ini = self.directory / "pgbouncer.ini"
        self.log = self.directory / "pgbouncer.log"
        self.pid_file = self.directory / "pgbouncer.pid"
        userlist = "".join(f'"{user}" ""\n' for user in users)
        (self.directory / "userlist.txt").write_text(userlist)
        self.ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={cluster.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.directory / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 1000\n"
            f"admin_users = {SUPERUSER}\n"
            f"logfile = {self.log}\n"
            f"pidfile = {self.pid_file}\n"
        )
        for path in self.directory.iterdir():
            hand_over_file(path)

    def url(self, dbname: str, user: str) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, dbname=dbname, user=user)

    def start(self) -> None:
        run_as_server_account(str(PGBOUNCER), "-d", str(self.ini))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    def stop(self) -> None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            while True:
                os.kill(pid, 0)
                time.sleep(0.05)
