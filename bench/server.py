"""Start the API as a real server process for load tests, against a bench database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

from bench.common import app_role_conninfo

BENCH_JWT_SECRET = "bench-secret-" + "x" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(server: str, app: str, port: int, workers: int) -> list[str]:
    """The command line that serves the factory `app`: `uvicorn` (optionally `uvicorn:<ws>`,
    one of uvicorn's `--ws` implementations or a protocol class) or `granian`."""
    name, _, ws = server.partition(":")
    address = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    common = [app, "--factory", *address, "--no-access-log", "--log-level", "warning"]
    if name == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", *common]
    ws_args: Sequence[str] = ("--ws", ws) if ws else ()
    return [sys.executable, "-m", "uvicorn", *common, *ws_args]


@contextmanager
def api_server(
    owner: str,
    *,
    workers: int = 1,
    pool_size: int = 20,
    app: str = "slotease.app:create_app",
    server: str = "uvicorn",
) -> Iterator[str]:
    """The API (or another factory of it) on a free port, with limits out of the way; yields
    its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": owner,
        "SLOTEASE_APP_DATABASE_URL": app_role_conninfo(owner),
        "SLOTEASE_JWT_SECRET": BENCH_JWT_SECRET,
        "SLOTEASE_RATE_LIMIT_ANON": "100000000/hour",
        "SLOTEASE_RATE_LIMIT_USER": "100000000/hour",
        "SLOTEASE_RATE_LIMIT_API_KEY": "100000000/hour",
        # Every load-generating client connects from 127.0.0.1.
        "SLOTEASE_REALTIME_CONNECTIONS_PER_ADDRESS": "100000000",
        "SLOTEASE_POOL_MIN_SIZE": str(pool_size),
        "SLOTEASE_POOL_MAX_SIZE": str(pool_size),
        "SLOTEASE_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(server_command(server, app, port, workers), env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the API did not become ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
