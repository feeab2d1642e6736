"""Realtime fan-out: N WebSocket clients subscribed to one queue on one server process.

For each N: the time from publishing an event (through the event bus, the path every
after-commit event takes) to the last client receiving it, p50/p95 over the events; and the
server's memory per idle connection (RSS delta / N). The same run measures a minimal broadcast
server written with the `websockets` library, sending the same payload, and gives the ratio.

    .venv/bin/python -m bench.realtime_fanout [--clients 1000 5000 10000] [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.common import fresh_database, machine, percentile
from bench.server import api_server, free_port
from slotease.app import create_app
from slotease.kit.events import DomainEvent, bus

CONNECT_BATCH = 250


def bench_app() -> FastAPI:
    """The API plus a route that publishes a queue event on the bus, as a commit would."""
    app = create_app()

    @app.post("/bench/publish", status_code=204)
    async def publish(payload: dict[str, Any]) -> None:
        await bus.publish(DomainEvent("queue.updated", payload))

    return app


async def peer_server(port: int) -> None:
    """The peer: a connection that subscribes gets every event; a `publish` message from any
    connection is broadcast to the subscribers, framed like SlotEase's events."""
    clients: set[ServerConnection] = set()
    seq = 0

    async def handler(connection: ServerConnection) -> None:
        nonlocal seq
        try:
            async for raw in connection:
                message = json.loads(raw)
                if message["type"] == "publish":
                    seq += 1
                    frame = json.dumps(
                        {
                            "type": "event",
                            "topic": message["topic"],
                            "event": "queue.updated",
                            "payload": message["payload"],
                            "seq": seq,
                        },
                        separators=(",", ":"),
                    )
                    broadcast(clients, frame)
                else:
                    clients.add(connection)
                    await connection.send(
                        json.dumps({"type": "subscribed", "topic": message["topic"]})
                    )
        finally:
            clients.discard(connection)

    async with serve(handler, "127.0.0.1", port, ping_interval=20, max_queue=16, backlog=4096):
        await asyncio.get_running_loop().create_future()


@contextmanager
def peer_process() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.realtime_fanout", "--peer", str(port)])
    try:
        for _ in range(100):
            try:
                with httpx.Client() as http:
                    http.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}|{process.pid}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def server_pid(port: int) -> int:
    """The process listening on `port` (uvicorn's, not the parent that started it)."""
    output = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(output.split("pid=")[1].split(",")[0])


@dataclass(frozen=True)
class Result:
    label: str
    clients: int
    p50_ms: float
    p95_ms: float
    kb_per_connection: float


async def measure(
    label: str,
    ws_url: str,
    pid: int,
    topic: str,
    clients: int,
    events: int,
    publish: Callable[[int], Awaitable[None]],
) -> Result:
    before = rss_bytes(pid)
    connections: list[ClientConnection] = []
    for start in range(0, clients, CONNECT_BATCH):
        batch = await asyncio.gather(
            *(
                connect(ws_url, max_queue=64, ping_interval=None)
                for _ in range(start, min(clients, start + CONNECT_BATCH))
            )
        )
        for ws in batch:
            await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
        for ws in batch:
            assert json.loads(await ws.recv())["type"] == "subscribed"
        connections.extend(batch)
    await asyncio.sleep(2)
    per_connection = (rss_bytes(pid) - before) / clients / 1024

    latencies: list[float] = []
    for n in range(events):
        received = 0
        last = 0.0

        async def wait_for_event(ws: ClientConnection, expected: int = n) -> None:
            nonlocal received, last
            while json.loads(await ws.recv())["payload"]["n"] != expected:
                pass
            received += 1
            last = max(last, time.perf_counter())

        waiters = [asyncio.create_task(wait_for_event(ws)) for ws in connections]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await publish(n)
        await asyncio.wait_for(asyncio.gather(*waiters), 60)
        latencies.append((last - started) * 1000)
        await asyncio.sleep(0.2)
    await asyncio.gather(*(ws.close() for ws in connections))
    return Result(
        label, clients, percentile(latencies, 0.5), percentile(latencies, 0.95), per_connection
    )


async def run(clients_list: list[int], events: int) -> list[Result]:
    owner = fresh_database("slotease_bench_realtime")
    with psycopg.connect(owner, autocommit=True) as conn:
        row = conn.execute(
            "insert into public.organizations (name, slug, kind, timezone) values"
            " ('Fan-out', 'fan-out', 'bank', 'UTC') returning id"
        ).fetchone()
        assert row is not None
        queue = conn.execute(
            "insert into public.queues (organization_id, name, prefix) values (%s, 'Main', 'A')"
            " returning id",
            (row[0],),
        ).fetchone()
        assert queue is not None
    queue_id = str(queue[0])
    topic = f"queue:{queue_id}"
    payload = {
        "queue_id": queue_id,
        "organization_id": str(row[0]),
        "waiting_count": 12,
        "now_serving": [41, 42],
    }
    results: list[Result] = []
    with (
        api_server(owner, app="bench.realtime_fanout:bench_app", pool_size=10) as api,
        peer_process() as peer,
    ):
        api_pid = server_pid(int(api.rsplit(":", 1)[1]))
        peer_url, peer_pid = peer.split("|")
        async with (
            httpx.AsyncClient(base_url=api) as http,
            connect(peer_url.replace("http", "ws")) as control,
        ):

            async def publish_api(n: int) -> None:
                (await http.post("/bench/publish", json={**payload, "n": n})).raise_for_status()

            async def publish_peer(n: int) -> None:
                await control.send(
                    json.dumps({"type": "publish", "topic": topic, "payload": {**payload, "n": n}})
                )

            for clients in clients_list:
                results.append(
                    await measure(
                        "SlotEase",
                        api.replace("http", "ws") + "/v1/realtime",
                        api_pid,
                        topic,
                        clients,
                        events,
                        publish_api,
                    )
                )
                results.append(
                    await measure(
                        "websockets broadcast",
                        peer_url.replace("http", "ws"),
                        int(peer_pid),
                        topic,
                        clients,
                        events,
                        publish_peer,
                    )
                )
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| clients | server | p50 ms | p95 ms | KB / idle connection | p95 ratio |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for ours, peer in zip(results[::2], results[1::2], strict=True):
        for result in (ours, peer):
            ratio = f"{ours.p95_ms / peer.p95_ms:.2f}" if result is ours else ""
            lines.append(
                f"| {result.clients:,} | {result.label} | {result.p50_ms:.1f} | {result.p95_ms:.1f}"
                f" | {result.kb_per_connection:.1f} | {ratio} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--peer", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.peer:
        asyncio.run(peer_server(args.peer))
        return
    results = asyncio.run(run(args.clients, args.events))
    print(f"Realtime fan-out, one server process; {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
