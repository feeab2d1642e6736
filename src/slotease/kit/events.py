"""Domain events and after-commit work.

The names and payloads are catalogued in kit.eventtypes. The bus belongs to the application
(AppContext.events) and reaches the worker through its runtime; nothing holds one globally.

A request's transaction collects what should happen once its change is durable: events for
subscribers (realtime, notifications, webhooks) and callbacks such as cache invalidation.
`deps.db_session` opens the scope, and runs it only after the commit; on rollback everything
collected is dropped, so nobody hears of a change that did not happen.

Transactional handlers are the exception: they run just before the commit, inside the
transaction and on its connection, so what they write (jobs to send a notification, for
instance) commits or rolls back together with the change that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slotease.db.database import SERVICE
from slotease.kit.eventtypes import EventName, check_event

if TYPE_CHECKING:
    from slotease.db.database import Connection, Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DomainEvent:
    name: EventName
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        check_event(self.name, self.payload)


EventHandler = Callable[[DomainEvent], Awaitable[None]]
Callback = Callable[[], Awaitable[None]]
TransactionalHandler = Callable[["Connection", DomainEvent], Awaitable[None]]


class EventBus:
    """In-process fan-out. A failing subscriber is logged and never fails the request: the
    change it reports is already committed."""

    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []
        self._transactional: list[TransactionalHandler] = []

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler)

    def subscribe_transactional(self, handler: TransactionalHandler) -> Callable[[], None]:
        self._transactional.append(handler)
        return lambda: self._transactional.remove(handler)

    async def run_transactional(self, conn: Connection, event: DomainEvent) -> None:
        # No try/except: a failing handler must fail the transaction, or the change would
        # commit without the work it owes.
        for handler in list(self._transactional):
            await handler(conn, event)

    async def publish(self, event: DomainEvent) -> None:
        for handler in list(self._handlers):
            try:
                await handler(event)
            except Exception:
                log.exception("event handler failed for %s", event.name)


@dataclass
class AfterCommit:
    bus: EventBus
    events: list[DomainEvent] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    # How many events the transactional handlers have run on: each runs on an event once.
    handled: int = 0

    async def before_commit(self, conn: Connection) -> None:
        """Run the transactional handlers on every event collected so far and not yet
        handled, including those the handlers themselves emit."""
        while self.handled < len(self.events):
            event = self.events[self.handled]
            self.handled += 1
            await self.bus.run_transactional(conn, event)

    async def run(self) -> None:
        # Callbacks first: they keep derived state (caches) in step before anyone is told.
        for callback in self.callbacks:
            try:
                await callback()
            except Exception:
                log.exception("after-commit callback failed")
        for event in self.events:
            await self.bus.publish(event)


_current: ContextVar[AfterCommit | None] = ContextVar("slotease_after_commit", default=None)


def _scope() -> AfterCommit:
    scope = _current.get()
    if scope is None:
        raise RuntimeError("no transaction is collecting after-commit work")
    return scope


def emit(event: DomainEvent) -> None:
    """Publish `event` once the current transaction commits."""
    _scope().events.append(event)


async def run_transactional_now(conn: Connection) -> None:
    """Run the transactional handlers on the events emitted so far now instead of just before
    the commit. For a write that holds a contended lock until its commit (a booking holds its
    service's capacity lock): the statements the handlers owe go out with the write, in one
    pipeline, and the commit follows."""
    await _scope().before_commit(conn)


def on_commit(callback: Callback) -> None:
    """Run `callback` once the current transaction commits."""
    _scope().callbacks.append(callback)


@asynccontextmanager
async def after_commit_scope(bus: EventBus) -> AsyncIterator[AfterCommit]:
    scope = AfterCommit(bus)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


@asynccontextmanager
async def service_transaction(db: Database, bus: EventBus) -> AsyncIterator[Connection]:
    """A transaction as service_role for work nobody requested (a periodic job), kept like a
    request's: `bus`'s transactional handlers run inside it, events are published after its
    commit."""
    async with after_commit_scope(bus) as after_commit:
        async with db.transaction(SERVICE) as conn:
            yield conn
            await after_commit.before_commit(conn)
        await after_commit.run()
