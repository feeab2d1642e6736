"""Realtime fan-out: N WebSocket clients subscribed to one queue on one server process.

For each N: the delay from publishing an event (through the event bus, the path every
after-commit event takes; the server stamps the payload as it publishes) to the last client
receiving it, p50/p95 over the events; and the server's memory per idle connection (RSS delta
/ N). The same run measures a minimal broadcast server written with the `websockets` library,
which stamps and broadcasts the same payload, and gives the ratio.

The clients are one compiled process (bench/wsclient, Go with gorilla/websocket from Debian's
packages), so reading 10,000 sockets costs the machine far less than the servers do; it does not
negotiate permessage-deflate, like the server (see `slotease serve`).

    .venv/bin/python -m bench.realtime_fanout [--clients 1000 5000 10000] [--events 10]
        [--servers uvicorn:slotease.realtime.transport:FanoutProtocol uvicorn:wsproto ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from fastapi import FastAPI, Request
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from bench.common import fresh_database, machine, percentile
from bench.server import api_server, free_port
from slotease.app import create_app
from slotease.context import app_context
from slotease.kit.events import DomainEvent

SERVE_PROTOCOL = "slotease.realtime.transport:FanoutProtocol"
CLIENT_SOURCE = Path(__file__).resolve().parent / "wsclient"
EVENT_TIMEOUT_SECONDS = 60
IDLE_SECONDS = 2
PAUSE_SECONDS = 0.2
PEER = "websockets broadcast"


def bench_app() -> FastAPI:
    """The API plus a route that publishes a queue event on the bus, as a commit would,
    stamped with the time it is published."""
    app = create_app()

    @app.post("/bench/publish")
    async def publish(payload: dict[str, Any], request: Request) -> dict[str, float]:
        event = DomainEvent("queue.updated", {**payload, "t": time.time_ns()})
        started = time.perf_counter()
        await app_context(request).events.publish(event)
        # The fan-out loop runs inside the publish: this is the time to write every socket.
        return {"fanout_ms": (time.perf_counter() - started) * 1000}

    return app


async def peer_server(port: int) -> None:
    """The peer: a connection that subscribes gets every event; a `publish` message from any
    connection is stamped and broadcast to the subscribers, framed like SlotEase's events."""
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
                            "payload": {**message["payload"], "t": time.time_ns()},
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
        except ConnectionClosed:
            # A client that leaves without a closing handshake is no error of the peer's.
            return
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
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def build_client() -> Path:
    output = subprocess.run(
        [str(CLIENT_SOURCE / "build.sh"), "/tmp/bench-bin"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Path(output.strip().splitlines()[-1])


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def server_pids(url: str) -> list[int]:
    """The processes listening on the port of `url` (uvicorn's server, granian's workers)."""
    port = url.rsplit(":", 1)[1]
    output = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({int(part.split(",")[0]) for part in output.split("pid=")[1:]})


@dataclass(frozen=True)
class Result:
    label: str
    clients: int
    p50_ms: float
    p95_ms: float
    kb_per_connection: float
    load: float
    # p95 of the server's own time to hand the event to every socket, where it reports it.
    fanout_p95_ms: float | None


async def measure(
    client: Path,
    label: str,
    ws_url: str,
    pids: list[int],
    topic: str,
    clients: int,
    events: int,
    publish: Callable[[int], Awaitable[float | None]],
) -> Result:
    before = rss_bytes(pids)
    process = await asyncio.create_subprocess_exec(
        str(client),
        f"-url={ws_url}",
        f"-clients={clients}",
        f"-topic={topic}",
        f"-events={events}",
        f"-timeout={EVENT_TIMEOUT_SECONDS * events}s",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        assert json.loads(await asyncio.wait_for(process.stdout.readline(), 600))["ready"]
        await asyncio.sleep(IDLE_SECONDS)
        per_connection = (rss_bytes(pids) - before) / clients / 1024
        latencies: list[float] = []
        fanouts: list[float] = []
        for n in range(events):
            if (fanout_ms := await publish(n)) is not None:
                fanouts.append(fanout_ms)
            line = await asyncio.wait_for(process.stdout.readline(), EVENT_TIMEOUT_SECONDS)
            stats = json.loads(line)
            if stats["event"] != n or stats["received"] != clients:
                raise RuntimeError(f"{label}: event {n} reached {stats['received']} clients")
            latencies.append(stats["last_ms"])
            await asyncio.sleep(PAUSE_SECONDS)
        load = os.getloadavg()[0]
        await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    result = Result(
        label,
        clients,
        percentile(latencies, 0.5),
        percentile(latencies, 0.95),
        per_connection,
        load,
        percentile(fanouts, 0.95) if fanouts else None,
    )
    # Each row as soon as it is measured: a long run that fails later keeps what it got.
    print(row(result), flush=True)
    return result


async def run(
    clients_list: list[int], events: int, servers: list[str], with_peer: bool
) -> list[Result]:
    client = build_client()
    owner = fresh_database("slotease_bench_fanout")
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
    for clients in clients_list:
        for server in servers:
            with api_server(
                owner, app="bench.realtime_fanout:bench_app", pool_size=10, server=server
            ) as api:
                async with httpx.AsyncClient(base_url=api) as http:

                    async def publish_api(n: int) -> float:
                        response = await http.post("/bench/publish", json={**payload, "n": n})
                        response.raise_for_status()
                        fanout_ms: float = response.json()["fanout_ms"]
                        return fanout_ms

                    results.append(
                        await measure(
                            client,
                            f"SlotEase ({server})",
                            api.replace("http", "ws") + "/v1/realtime",
                            server_pids(api),
                            topic,
                            clients,
                            events,
                            publish_api,
                        )
                    )
        if not with_peer:
            continue
        with peer_process() as peer_url:
            async with connect(peer_url.replace("http", "ws")) as control:

                async def publish_peer(n: int) -> None:
                    message = {"type": "publish", "topic": topic, "payload": {**payload, "n": n}}
                    await control.send(json.dumps(message))

                results.append(
                    await measure(
                        client,
                        PEER,
                        peer_url.replace("http", "ws"),
                        server_pids(peer_url),
                        topic,
                        clients,
                        events,
                        publish_peer,
                    )
                )
    return results


HEADER = (
    "| clients | server | p50 ms | p95 ms | server write p95 ms | KB / idle connection"
    " | load (1 min) |\n|---:|---|---:|---:|---:|---:|---:|"
)


def row(result: Result) -> str:
    return (
        f"| {result.clients:,} | {result.label} | {result.p50_ms:.1f} | {result.p95_ms:.1f}"
        f" | {'' if result.fanout_p95_ms is None else f'{result.fanout_p95_ms:.1f}'}"
        f" | {result.kb_per_connection:.1f} | {result.load:.2f} |"
    )


def ratios(results: list[Result]) -> str:
    """Each server's p95 against the peer's at the same number of clients."""
    peers = {result.clients: result for result in results if result.label == PEER}
    return "\n".join(
        f"{result.clients:,} clients, {result.label}: p95 {result.p95_ms / peer.p95_ms:.2f}"
        f" x the peer's, memory {result.kb_per_connection / peer.kb_per_connection:.2f} x"
        for result in results
        if result.label != PEER and (peer := peers.get(result.clients)) is not None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--events", type=int, default=10)
    # As `slotease serve` runs it; others: uvicorn:wsproto, uvicorn:websockets, granian, ...
    parser.add_argument("--servers", nargs="+", default=[f"uvicorn:{SERVE_PROTOCOL}"])
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--peer", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.peer:
        asyncio.run(peer_server(args.peer))
        return
    print(f"Realtime fan-out, one server process; {machine()}\n\n{HEADER}", flush=True)
    results = asyncio.run(run(args.clients, args.events, args.servers, not args.no_peer))
    print(f"\n{ratios(results)}")


if __name__ == "__main__":
    main()
