"""Start the API as a real server process for load tests, against a bench database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

from bench.common import PIDS, app_role_conninfo, free_port

__all__ = ["BENCH_JWT_SECRET", "api_server", "free_port"]

BENCH_JWT_SECRET = "bench-secret-" + "x" * 40


def server_command(server: str, app: str, port: int, workers: int) -> list[str]:
    """The command line that serves the factory `app`: `uvicorn` (optionally `uvicorn:<ws>`,
    one of uvicorn's `--ws` implementations or a protocol class) or `granian`."""
    name, _, ws = server.partition(":")
    address = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    common = [app, "--factory", *address, "--no-access-log", "--log-level", "warning"]
    if name == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", *common]
    ws_args: Sequence[str] = ("--ws", ws) if ws else ()
    # What `slotease serve` runs: httptools and uvloop.
    fast = ["--http", "httptools", "--loop", "uvloop"]
    return [sys.executable, "-m", "uvicorn", *common, *fast, *ws_args]


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
    PIDS[url] = process.pid
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
