"""SlotEase on a throwaway cluster: a migrated database, the settings of an app on it, and
`slotease serve` / `slotease worker` as real processes that a test may kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from slotease.config import Settings
from slotease.migrations import runner
from tests.clusters.pgcluster import Cluster, free_port
from tests.conftest import TEST_ENCRYPTION_KEYS, TEST_JWT_SECRET, wait_until_serving
from tests.notifications.support import Mailbox

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "slotease"
UNLIMITED = "100000/hour"


def migrate(cluster: Cluster) -> str:
    """Create the SlotEase database on `cluster` and migrate it; its owner's URL."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"create database {DATABASE}")
    owner = cluster.url(DATABASE)
    runner.upgrade(owner)
    return owner


def environment(cluster: Cluster, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a SlotEase process on `cluster` (its login roles by default, since the
    cluster trusts local connections), without anything of the test run's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLOTEASE_", "REDIS_URL"))}
    return env | {
        "DATABASE_URL": cluster.url(DATABASE),
        "SLOTEASE_ENV": "test",
        "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET,
        "SLOTEASE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,
        "SLOTEASE_DATA_DIR": str(data_dir),
        "SLOTEASE_RATE_LIMIT_ANON": UNLIMITED,
        "SLOTEASE_RATE_LIMIT_USER": UNLIMITED,
        "SLOTEASE_RATE_LIMIT_API_KEY": UNLIMITED,
        "SLOTEASE_RATE_LIMIT_AUTH": UNLIMITED,
        "SLOTEASE_LOG_LEVEL": "WARNING",
        **settings,
    }


def app_settings(cluster: Cluster, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an app in the test's own process on `cluster`."""
    defaults: dict[str, Any] = {
        "env": "test",
        "database_url": cluster.url(DATABASE),
        "jwt_secret": TEST_JWT_SECRET,
        "encryption_keys": TEST_ENCRYPTION_KEYS,
        "data_dir": data_dir,
        "rate_limit_api_key": UNLIMITED,
        "rate_limit_user": UNLIMITED,
        "rate_limit_anon": UNLIMITED,
        "pool_min_size": 1,
        "pool_max_size": 10,
    }
    return Settings(**(defaults | overrides))


class Process:
    """One `slotease ...` command running in the background, its output kept in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                [str(Path(sys.executable).with_name("slotease")), *argv],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: nothing runs on the way out."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def confirmed(mailbox: Mailbox, addresses: set[str]) -> list[str]:
    """The recipients among `addresses` of each booking confirmation received, repeats kept
    (earlier tests' bookings may be confirmed meanwhile: only these addresses count)."""
    return [
        recipient
        for recipients, message in list(mailbox.messages)
        if message["Subject"].startswith("Booking confirmed")
        for recipient in recipients
        if recipient in addresses
    ]


@contextmanager
def serving(
    env: dict[str, str], logs: Path, *, worker: bool = False
) -> Iterator[tuple[str, Process]]:
    """`slotease serve` on a free port (without its in-process worker unless `worker`); its
    base URL and process."""
    port = free_port()
    argv = ["serve", "--port", str(port), *([] if worker else ["--no-worker"])]
    process = Process(argv, env, logs / f"serve-{port}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(url, process.popen, 60):
            raise RuntimeError(f"the server did not start:\n{process.output()}")
        yield url, process
    finally:
        process.stop()


@contextmanager
def working(env: dict[str, str], logs: Path, name: str) -> Iterator[Process]:
    """`slotease worker`, stopped at the end unless the test killed it already."""
    process = Process(["worker"], env, logs / f"worker-{name}.log")
    try:
        yield process
    finally:
        process.stop()
