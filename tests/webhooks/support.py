"""A webhook receiver that checks signatures the way a customer's endpoint would, and the
arrangements the webhook tests share."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.appointments.arrange import Clinic, soon
from tests.factories import Owner, User, make_user

TOLERANCE_SECONDS = 300


def verify(header: str, body: bytes, secrets: list[str], now: float) -> bool:
    """Recompute HMAC-SHA256(secret, "<t>.<raw body>") for each accepted secret, compare in
    constant time with every v1 signature, and refuse a timestamp over five minutes old."""
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = timestamp.encode() + b"." + body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    return any(hmac.compare_digest(e, given) for e in expected for given in signatures)


@dataclass
class Receiver:
    """What the endpoint received, and how it answers: each entry of `script` answers one
    request ("ok", "500", "410", "slow"); then "ok"."""

    secrets: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    slow_seconds: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"

    def reset(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.script.clear()
        self.requests.clear()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            verified = verify(
                self.headers.get("X-SlotEase-Signature", ""), body, receiver.secrets, time.time()
            )
            answer = receiver.next_answer()
            receiver.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body, "ok": verified}
            )
            if answer == "slow":
                time.sleep(receiver.slow_seconds)
            status = {"ok": 200, "500": 500, "410": 410, "slow": 200}[answer]
            if not verified:
                status = 400
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

    return Handler


@contextmanager
def receiver_server(receiver: Receiver) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


async def create_webhook(
    client: httpx.AsyncClient, admin: User, org_id: object, url: str, events: list[str]
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/organizations/{org_id}/webhooks",
        json={"url": url, "events": events},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def book(
    client: httpx.AsyncClient,
    owner: Owner,
    clinic: Clinic,
    hh_mm: str,
    days: int = 5,
    notes: str | None = None,
) -> dict[str, Any]:
    customer = make_user(owner)
    response = await client.post(
        "/v1/appointments",
        json={
            "service_id": str(clinic.service_id),
            "starts_at": clinic.at(soon(clinic, days), hh_mm).isoformat(),
            "notes": notes,
        },
        headers=customer.headers,
    )
    assert response.status_code == 201, response.text
    booked: dict[str, Any] = response.json()
    return booked


def deliveries(owner: Owner, webhook_id: object) -> list[tuple[Any, ...]]:
    return owner.execute(
        "select id, event, status, attempts, response_code, latency_ms, last_error,"
        " next_attempt_at, delivered_at, payload"
        " from public.webhook_deliveries where webhook_id = %s order by created_at, id",
        (webhook_id,),
    ).fetchall()


def webhook_state(owner: Owner, webhook_id: object) -> tuple[Any, ...]:
    row = owner.execute(
        "select is_active, disabled_at, consecutive_failures from public.webhooks where id = %s",
        (webhook_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def make_due(owner: Owner) -> None:
    """Bring every scheduled job forward instead of waiting for its backoff."""
    owner.execute(
        "update public.procrastinate_jobs set scheduled_at = now() - interval '1 second'"
        " where status = 'todo' and scheduled_at is not null"
    )


def body_of(request: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(request["body"])
    return decoded
