"""Local protocol servers for the providers, and a worker run that stops when caught up."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from procrastinate import App

from slotease.config import Settings
from slotease.db.database import Database
from slotease.jobs.queues import priority_of
from slotease.jobs.worker import job_app
from slotease.kit.events import EventBus
from slotease.notifications.delivery import NOTIFICATIONS_QUEUE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ----- SMTP ------------------------------------------------------------------------------
@dataclass
class Mailbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    # Cleared by `hold()`: messages then wait for `release()` before they are answered, and
    # how many wait is counted in `held`.
    accepting: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    # The client address (host, port) of each accepted message: one per SMTP connection.
    peers: list[tuple[str, int]] = field(default_factory=list)
    # Recipients answered with this reply to RCPT instead of "250 OK".
    refuse: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.accepting.set()

    def hold(self) -> None:
        self.accepting.clear()

    def release(self) -> None:
        self.accepting.set()

    def clear(self) -> None:
        self.messages.clear()
        self.peers.clear()
        self.refuse.clear()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.accepting.is_set():
            self.held += 1
            await asyncio.to_thread(self.accepting.wait)
            if server.transport is None or server.transport.is_closing():
                # The sender went away before hearing "250": as for any SMTP server, the
                # message was never accepted.
                return "421 Connection lost"
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        self.peers.append(session.peer)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def with_smtp(settings: Settings, port: int) -> Settings:
    """`settings` sending email through the local server on `port`."""
    return settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
    )


def body_of(message: EmailMessage, kind: str = "plain") -> str:
    """The text of the message's `text/<kind>` part."""
    part = message.get_body((kind,))
    assert part is not None, f"no text/{kind} part"
    content: str = part.get_content()
    return content


# ----- HTTP providers --------------------------------------------------------------------
@dataclass
class Provider:
    """What a provider received, and how it should answer the next calls."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    # Each entry answers one request: "ok", "500", "slow" (longer than the client timeout).
    script: list[str] = field(default_factory=list)
    slow_seconds: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"


def _handler(provider: Provider, check: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = provider.next_answer()
            if answer == "slow":
                time.sleep(provider.slow_seconds)
            status, headers, payload = check(self.path, self.headers, body)
            provider.requests.append({"path": self.path, "status": status, "body": body})
            if answer == "500" and status < 400:
                status, headers, payload = 500, {}, {"message": "internal error"}
            data = json.dumps(payload).encode()
            # The client may have given up on a slow answer already.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                for key, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

    return Handler


@contextmanager
def http_server(provider: Provider, check: Any) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider, check))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def twilio_check(sid: str, token: str) -> Any:
    expected = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()

    def check(path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        if headers.get("Authorization") != expected:
            return 401, {}, {"code": 20003, "message": "Authenticate"}
        if path != f"/2010-04-01/Accounts/{sid}/Messages.json":
            return 404, {}, {"message": "not found"}
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return 400, {}, {"message": "form encoding expected"}
        form = parse_qs(body.decode())
        if not all(form.get(k) for k in ("To", "From", "Body")):
            return 400, {}, {"code": 21604, "message": "A 'To' phone number is required."}
        return 201, {}, {"sid": "SM" + "a" * 32, "status": "queued", "to": form["To"][0]}

    return check


def sendgrid_check(key: str) -> Any:
    def check(path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        if headers.get("Authorization") != f"Bearer {key}":
            return 401, {}, {"errors": [{"message": "unauthorized"}]}
        if path != "/v3/mail/send":
            return 404, {}, {}
        mail = json.loads(body)
        ok = (
            mail["personalizations"][0]["to"][0]["email"]
            and mail["from"]["email"]
            and mail["subject"]
            and mail["content"][0]["type"] == "text/plain"
        )
        if not ok:
            return 400, {}, {"errors": [{"message": "bad request"}]}
        return 202, {"X-Message-Id": "sg-message-1"}, {}

    return check


def fcm_check(project: str, token: str) -> Any:
    def check(path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        if headers.get("Authorization") != f"Bearer {token}":
            return 401, {}, {"error": {"status": "UNAUTHENTICATED"}}
        if path != f"/v1/projects/{project}/messages:send":
            return 404, {}, {}
        message = json.loads(body)["message"]
        data_ok = all(isinstance(v, str) for v in message.get("data", {}).values())
        if not (message.get("token") and message["notification"].get("title") and data_ok):
            return 400, {}, {"error": {"status": "INVALID_ARGUMENT"}}
        return 200, {}, {"name": f"projects/{project}/messages/0:1"}

    return check


# ----- jobs ------------------------------------------------------------------------------
@asynccontextmanager
async def worker_app(
    settings: Settings, bus: EventBus | None = None
) -> AsyncIterator[tuple[App, Database]]:
    """A worker's App; its tasks publish on `bus` (the test app's, to reach its subscribers)."""
    from slotease.db.pools import worker_database

    db = worker_database(settings, max_size=4)
    await db.open()
    try:
        async with job_app(settings, db, bus or EventBus()) as app:
            yield app, db
    finally:
        await db.close()


async def run_jobs(app: App) -> None:
    """Run every job that is due, then return."""
    await app.run_worker_async(
        wait=False, install_signal_handlers=False, listen_notify=False, concurrency=1
    )


async def run_periodic(settings: Settings, task: str, bus: EventBus | None = None) -> None:
    """Run the periodic task `task` now, through a worker, as its schedule would."""
    async with worker_app(settings, bus) as (app, _):
        await app.configure_task(task).defer_async(timestamp=int(time.time()))
        await run_jobs(app)


def jobs(owner: psycopg.Connection[Any], task: str | None = None) -> list[tuple[Any, ...]]:
    return owner.execute(
        "select id, task_name, status::text, args, scheduled_at, queueing_lock"
        " from public.procrastinate_jobs where %(task)s::text is null or task_name = %(task)s"
        " order by id",
        {"task": task},
    ).fetchall()


def queue_delivery(
    owner: psycopg.Connection[Any],
    org: Any,
    user_id: Any,
    *,
    channel: str = "email",
    template: str | None = None,
    data: dict[str, Any] | None = None,
) -> Any:
    """A queued notification and the job that delivers it; returns the notification's id."""
    [notification] = queue_deliveries(
        owner, org, [user_id], channel=channel, template=template, data=data
    )
    return notification


def queue_deliveries(
    owner: psycopg.Connection[Any],
    org: Any,
    user_ids: list[Any],
    *,
    channel: str = "email",
    template: str | None = None,
    data: dict[str, Any] | None = None,
) -> list[Any]:
    """A queued notification to each of `user_ids` and the one job that delivers them all;
    returns the notifications' ids in that order."""
    ids = [uuid.uuid4() for _ in user_ids]
    owner.execute(
        "insert into public.notifications"
        " (id, organization_id, user_id, channel, template, subject, body, data)"
        " select i, %s, u, %s, %s, 'Hi', 'Hello', %s from unnest(%s::uuid[], %s::uuid[]) t(i, u)",
        (org, channel, template, json.dumps(data or {}), ids, user_ids),
    )
    owner.execute(
        "select app.enqueue_job(%s, 'notifications.deliver', %s::jsonb, priority => %s)",
        (
            NOTIFICATIONS_QUEUE,
            json.dumps({"ids": [str(i) for i in ids]}),
            priority_of(NOTIFICATIONS_QUEUE),
        ),
    )
    return ids
