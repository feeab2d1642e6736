"""Keyset pagination: `{"items": [...], "next_cursor": ...}` with an opaque cursor."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel

from slotease.kit.problems import Unprocessable

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# The page size when the caller names none.
DEFAULT_LIMIT = 50

LimitQuery = Annotated[int, Query(ge=1, le=200, description="Page size, at most 200.")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    """The sort key of the last item of a page, made opaque."""
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable("The cursor is not valid.") from None
    if not isinstance(values, list) or len(values) != arity:
        raise Unprocessable("The cursor is not valid.")
    return values


def text_key(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a text key")
    return value


def number_key(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number key")
    return float(value)


def timestamp_key(value: Any) -> datetime:
    return datetime.fromisoformat(text_key(value))


def cursor_key(cursor: str | None, parse_key: Callable[[Any], Any]) -> tuple[Any, UUID] | None:
    """The (sort value, id) of a cursor, checked so that a forged one is a 422, not a 500."""
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    try:
        return parse_key(values[0]), UUID(text_key(values[1]))
    except ValueError:
        raise Unprocessable("The cursor is not valid.") from None


def page_of(rows: list[T], limit: int, key: list[str] | None = None) -> tuple[list[T], str | None]:
    """Split a `limit + 1` fetch into the page and the cursor of its last row."""
    if len(rows) <= limit:
        return rows, None
    items = rows[:limit]
    last = items[-1]
    keys = key or ["id"]
    values = [last[k] if isinstance(last, dict) else getattr(last, k) for k in keys]
    return items, encode_cursor(values)


def model_page(
    model: type[M], rows: list[dict[str, Any]], limit: int, key: list[str] | None = None
) -> Page[M]:
    """`page_of` with each row of the page read as `model`: what services return."""
    items, next_cursor = page_of(rows, limit, key)
    return Page(items=[model.model_validate(row) for row in items], next_cursor=next_cursor)
