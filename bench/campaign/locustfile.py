"""The people of a booking campaign opening, for locust; `python -m bench.campaign` seeds the
campaign, starts the servers and runs this file (the plan's path in CAMPAIGN_PLAN).

Customers are signed in (the campaign asks for an account to book) and act at a person's
pace: most of the time they look at a centre's services and a week of its availability; they
book one of the earliest free slots with an Idempotency-Key, and sometimes send the same
request again (a client retrying after a lost answer), which must answer the same
appointment; they look at their appointments, cancel some (and book again later), join a
centre's walk-in queue and follow their ticket until it is served (half of them on the
realtime WebSocket, the others by polling), or leave the line. Counter staff call the next
ticket, start and complete it.

Only the public HTTP API is used, so the file stays valid whatever the server does inside.
A refusal the contract gives in normal use (409: the slot filled up since it was listed, or a
desk took the ticket its holder is leaving) is a success recorded under its own name,
`<route> [409]`, which the runner counts apart from the errors; any other unexpected answer
is a failure of its route.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from bench.campaign.plan import Counter, Person, Plan

# Everyone aims at the first free slots of the week, as on an opening day: the contention
# that fills slots and makes 409s.
EARLIEST = 20
# A client resends a successful booking this often, as after a lost answer.
RESEND_SHARE = 0.1
CANCEL_SHARE = 0.3
LEAVE_LINE_SHARE = 0.05
# Ticket holders who follow their ticket on `GET /v1/realtime` rather than by polling.
WATCH_SHARE = 0.5
ACTIVE_TICKET = {"waiting", "called", "serving"}
TICKET_ENDS = {"ticket.served", "ticket.no_show", "ticket.cancelled"}
SUBSCRIBED = "WS /v1/realtime subscribe ticket:{id}"
FOLLOWED = "WS /v1/realtime ticket:{id} events"

# Each process hands out its slice of the accounts in turn (counters restart at every fork).
_next_customer = itertools.count()
_next_counter = itertools.count()


@cache
def plan() -> Plan:
    return Plan.read(Path(os.environ["CAMPAIGN_PLAN"]))


@events.init.add_listener  # type: ignore[untyped-decorator]
def _staff_every_desk(environment: Environment, **_: Any) -> None:
    """One counter user per desk, whatever the total of users asked for."""
    CounterStaff.fixed_count = len(plan().counters)


def _mine(environment: Environment, people: list[Any], turn: int) -> Any:
    """The `turn`-th entry of this process's slice of `people`: slices split them between
    locust's worker processes so that no two simulated users share an account."""
    runner = environment.runner
    index = max(getattr(runner, "worker_index", 0), 0) % plan().slices
    mine = people[index :: plan().slices]
    return mine[turn % len(mine)]


def _what_went_wrong(response: Any) -> str:
    """A short, groupable reason: the status and the problem type, or the client's error."""
    if response.status_code == 0:
        return f"no answer: {type(response.error).__name__}"
    try:
        problem = response.json()["type"].rsplit("/", 1)[-1]
    except (ValueError, KeyError, TypeError, AttributeError):
        problem = (response.text or "")[:80]
    return f"{response.status_code} {problem}"


class _Caller(FastHttpUser):
    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0
    headers: dict[str, str]

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        ok: Iterable[int],
        refused: Iterable[int] = (),
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """Send one request as this user; answer its status and JSON body (None unless
        `ok`)."""
        with self.client.request(
            method,
            path,
            name=name,
            headers={**self.headers, **(headers or {})},
            catch_response=True,
            **kwargs,
        ) as response:
            status = response.status_code
            if status in ok:
                response.success()
                return status, response.json() if response.content else None
            if status in refused:
                response.request_meta["name"] = f"{name} [{status}]"
                response.success()
                return status, None
            response.failure(_what_went_wrong(response))
            return status, None

    def wrong(self, check: str, detail: str) -> None:
        """A correctness check of the answers failed: recorded as an error row of its own."""
        self.record("CHECK", check, 0.0, AssertionError(detail))

    def record(
        self, kind: str, name: str, milliseconds: float, failure: Exception | None = None
    ) -> None:
        """A measure that is not an HTTP request of the client, in locust's statistics."""
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=milliseconds,
            response_length=0,
            exception=failure,
            context={},
        )


class Customer(_Caller):
    wait_time = between(5, 15)

    def on_start(self) -> None:
        person: Person = _mine(self.environment, plan().customers, next(_next_customer))
        self.token = person.token
        self.headers = {"Authorization": f"Bearer {person.token}"}
        self.centre = random.choice(plan().centres)
        self.service = random.choice(self.centre.services)
        self.slots: list[str] = []
        self.appointment: str | None = None
        self.ticket: str | None = None
        self.watcher: gevent.Greenlet | None = None

    def on_stop(self) -> None:
        if self.watcher is not None:
            self.watcher.kill()

    @task(1)
    def directory(self) -> None:
        self.call("GET", "/v1/organizations", name="GET /v1/organizations", ok={200})

    @task(4)
    def services(self) -> None:
        self.call(
            "GET",
            f"/v1/organizations/{self.centre.id}/services",
            name="GET /v1/organizations/{id}/services",
            ok={200},
        )
        self.service = random.choice(self.centre.services)

    @task(10)
    def availability(self) -> None:
        today = datetime.now(ZoneInfo(plan().timezone)).date()
        last = today + timedelta(days=plan().window_days - 1)
        _, body = self.call(
            "GET",
            f"/v1/available-slots?service_id={self.service}&from={today}&to={last}",
            name="GET /v1/available-slots",
            ok={200},
        )
        if body is not None:
            self.slots = [slot["starts_at"] for slot in body["slots"]]

    @task(3)
    def book(self) -> None:
        if self.appointment is not None:
            self.my_appointments()
            return
        if not self.slots:
            self.availability()
        if not self.slots:
            return
        payload = {"service_id": self.service, "starts_at": random.choice(self.slots[:EARLIEST])}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        _, booked = self.call(
            "POST",
            "/v1/appointments",
            name="POST /v1/appointments",
            ok={201},
            refused={409},
            json=payload,
            headers=key,
        )
        if booked is None:
            # Full since it was listed: look again before the next try.
            self.slots = []
            return
        self.appointment = booked["id"]
        if random.random() < RESEND_SHARE:
            _, again = self.call(
                "POST",
                "/v1/appointments",
                name="POST /v1/appointments (same key again)",
                ok={201},
                json=payload,
                headers=key,
            )
            if again is not None and again["id"] != booked["id"]:
                self.wrong("same Idempotency-Key, another appointment", again["id"])

    @task(2)
    def my_appointments(self) -> None:
        self.call("GET", "/v1/appointments", name="GET /v1/appointments", ok={200})

    @task(1)
    def look_at_or_cancel(self) -> None:
        if self.appointment is None:
            self.availability()
            return
        if random.random() >= CANCEL_SHARE:
            self.call(
                "GET",
                f"/v1/appointments/{self.appointment}",
                name="GET /v1/appointments/{id}",
                ok={200},
            )
            return
        _, cancelled = self.call(
            "DELETE",
            f"/v1/appointments/{self.appointment}",
            name="DELETE /v1/appointments/{id}",
            ok={200},
        )
        if cancelled is not None:
            if cancelled["status"] != "cancelled":
                self.wrong("cancel answered another status", cancelled["status"])
            self.appointment = None
            self.slots = []

    @task(1)
    def join_queue(self) -> None:
        if self.ticket is not None:
            self.watch_ticket()
            return
        _, ticket = self.call(
            "POST",
            f"/v1/queues/{self.centre.queue}/tickets",
            name="POST /v1/queues/{id}/tickets",
            ok={201},
            json={},
        )
        if ticket is not None:
            self.ticket = ticket["id"]
            if random.random() < WATCH_SHARE:
                self.watcher = gevent.spawn(self.follow, ticket["id"])

    def follow(self, ticket: str) -> None:
        """Subscribe to the ticket's topic and read its events until it ends; after a
        failure the ticket is polled instead, as a client would."""
        url = f"{(self.host or '').replace('http', 'ws', 1)}/v1/realtime?token={self.token}"
        started = time.perf_counter()
        ended = False
        try:
            with connect(url, open_timeout=30) as ws:
                ws.send(json.dumps({"type": "subscribe", "topic": f"ticket:{ticket}"}))
                answer = json.loads(ws.recv(timeout=30))
                took = (time.perf_counter() - started) * 1000
                if answer.get("type") != "subscribed":
                    self.record("WS", SUBSCRIBED, took, AssertionError(str(answer)))
                    return
                self.record("WS", SUBSCRIBED, took)
                ended = self.read_until_end(ws)
        except (OSError, ValueError, WebSocketException) as failure:
            took = (time.perf_counter() - started) * 1000
            self.record("WS", SUBSCRIBED, took, failure)
        finally:
            if ended and self.ticket == ticket:
                self.ticket = None
            # A later ticket may have its own watcher by now.
            if self.watcher is gevent.getcurrent():
                self.watcher = None

    def read_until_end(self, ws: ClientConnection) -> bool:
        """Whether the ticket's end arrived before the connection closed."""
        try:
            for frame in ws:
                message = json.loads(frame)
                if message.get("type") == "event" and message.get("event") in TICKET_ENDS:
                    return True
        except ConnectionClosed as closed:
            self.record("WS", FOLLOWED, 0.0, closed)
        return False

    @task(3)
    def watch_ticket(self) -> None:
        self.call(
            "GET",
            f"/v1/queues/{self.centre.queue}",
            name="GET /v1/queues/{id}",
            ok={200},
        )
        if self.ticket is None:
            return
        if random.random() < LEAVE_LINE_SHARE:
            # 409: a desk started serving it meanwhile, so it stays followed until served.
            status, _ = self.call(
                "DELETE",
                f"/v1/tickets/{self.ticket}",
                name="DELETE /v1/tickets/{id}",
                ok={200},
                refused={409},
            )
            if status == 200:
                self.ticket = None
            return
        if self.watcher is not None:
            return
        _, ticket = self.call(
            "GET", f"/v1/tickets/{self.ticket}", name="GET /v1/tickets/{id}", ok={200}
        )
        if ticket is not None and ticket["status"] not in ACTIVE_TICKET:
            self.ticket = None


class CounterStaff(_Caller):
    """A desk of a centre's walk-in queue: calls the next person, vaccinates, completes."""

    wait_time = between(2, 5)
    fixed_count = 1

    def on_start(self) -> None:
        desk: Counter = _mine(self.environment, plan().counters, next(_next_counter))
        self.headers = {"Authorization": f"Bearer {desk.token}"}
        self.queue = desk.queue
        self.counter = desk.name
        self.serving: str | None = None

    @task
    def next_person(self) -> None:
        if self.serving is not None:
            self.call(
                "POST",
                "/v1/queue/update",
                name="POST /v1/queue/update (complete)",
                ok={200},
                json={"ticket_id": self.serving, "action": "complete"},
            )
            self.serving = None
            return
        status, called = self.call(
            "POST",
            f"/v1/queues/{self.queue}/call-next",
            name="POST /v1/queues/{id}/call-next",
            ok={200, 204},
            json={"counter": self.counter},
        )
        if status != 200 or called is None:
            return
        _, started = self.call(
            "POST",
            "/v1/queue/update",
            name="POST /v1/queue/update (start)",
            ok={200},
            refused={409},
            json={"ticket_id": called["id"], "action": "start"},
        )
        # 409: the holder left the line between the call and the start.
        self.serving = called["id"] if started is not None else None
