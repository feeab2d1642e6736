"""The after-commit scope: transactional handlers run on each event exactly once, whether a
write runs them early (`run_transactional_now`) or they run just before the commit."""

from __future__ import annotations

from typing import Any, cast

import pytest

from slotease.db.database import Connection
from slotease.kit.events import (
    DomainEvent,
    EventBus,
    after_commit_scope,
    emit,
    run_transactional_now,
)

pytestmark = pytest.mark.anyio

CONN = cast(Connection, object())  # the handlers below never touch it


def _queue_updated(queue_id: str) -> DomainEvent:
    payload: dict[str, Any] = {
        "queue_id": queue_id, "organization_id": "o", "waiting_count": 0, "now_serving": [],
    }  # fmt: skip
    return DomainEvent("queue.updated", payload)


async def test_each_event_is_handled_once_early_or_before_the_commit() -> None:
    bus = EventBus()
    handled: list[str] = []

    async def handler(_: Connection, event: DomainEvent) -> None:
        handled.append(event.payload["queue_id"])
        if event.payload["queue_id"] == "early":
            emit(_queue_updated("emitted by a handler"))

    bus.subscribe_transactional(handler)
    async with after_commit_scope(bus) as scope:
        emit(_queue_updated("early"))
        await run_transactional_now(CONN)
        assert handled == ["early", "emitted by a handler"]
        emit(_queue_updated("late"))
        await scope.before_commit(CONN)
        await scope.before_commit(CONN)

    assert handled == ["early", "emitted by a handler", "late"]
    # Every event is still published after the commit, once.
    assert [e.payload["queue_id"] for e in scope.events] == handled


async def test_running_handlers_early_needs_a_transaction_scope() -> None:
    with pytest.raises(RuntimeError):
        await run_transactional_now(CONN)
