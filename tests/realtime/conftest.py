"""Real server processes and WebSocket clients for the realtime tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import DB_POOLER, TEST_ENCRYPTION_KEYS, TEST_JWT_SECRET, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
ServerFactory = Callable[..., AbstractContextManager[str]]
# As `slotease serve` runs it: frames written in place, connections detached. The endpoint's
# other path, for servers without that extension, runs under uvicorn's own protocol.
FANOUT_PROTOCOL = "slotease.realtime.transport:FanoutProtocol"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def start_server(
    owner_conninfo: str,
    app_conninfo: str,
    worker_conninfo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerFactory:
    """Starts the app (tests.realtime.server) in a uvicorn process; yields its base URL."""

    @contextmanager
    def start(ws: str = FANOUT_PROTOCOL, **settings: str) -> Iterator[str]:
        port = free_port()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SLOTEASE_", "REDIS_URL"))
        }
        env |= {
            "DATABASE_URL": owner_conninfo,
            "SLOTEASE_APP_DATABASE_URL": app_conninfo,
            "SLOTEASE_WORKER_DATABASE_URL": worker_conninfo,
            "SLOTEASE_DB_POOLER": DB_POOLER,
            "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET,
            "SLOTEASE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,
            "SLOTEASE_DATA_DIR": str(tmp_path_factory.mktemp("server")),
            "SLOTEASE_RATE_LIMIT_ANON": "100000/hour",
            "SLOTEASE_RATE_LIMIT_USER": "100000/hour",
            "SLOTEASE_RATE_LIMIT_AUTH": "100000/hour",
            "SLOTEASE_POOL_MIN_SIZE": "1",
            "SLOTEASE_POOL_MAX_SIZE": "4",
            "SLOTEASE_LOG_LEVEL": "WARNING",
            **settings,
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.realtime.server:build",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--ws",
                ws,
                "--ws-per-message-deflate",
                "false",
            ],
            env=env,
            cwd=ROOT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_serving(url, process, 30):
                raise RuntimeError("the test server did not start")
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)

    return start


@pytest.fixture(scope="module", params=[FANOUT_PROTOCOL, "websockets-sansio"])
def server_url(start_server: ServerFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """One server with the in-process broker and a replay buffer of three events per topic,
    under each WebSocket protocol."""
    with start_server(request.param, SLOTEASE_REALTIME_REPLAY="3") as url:
        yield url


def ws_url(base: str, token: str | None = None) -> str:
    url = base.replace("http://", "ws://") + "/v1/realtime"
    return f"{url}?token={token}" if token else url


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 3))
    return message


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def subscribe(ws: ClientConnection, topic: str, **extra: Any) -> dict[str, Any]:
    await send(ws, {"type": "subscribe", "topic": topic, **extra})
    return await receive(ws)


async def emit(
    base: str,
    name: str,
    payload: dict[str, Any],
    *,
    rollback: bool = False,
    token: str | None = None,
) -> httpx.Response:
    """Emit in a request of `token`'s user (anonymous without): an event that enqueues a job
    needs a caller with business with the organization, as in the real routes."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base) as http:
        return await http.post(
            "/test/emit",
            json={"name": name, "payload": payload, "rollback": rollback},
            headers=headers,
        )


@pytest.fixture
async def anon_ws(server_url: str) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(server_url)) as ws:
        yield ws
