"""Refuse text with a NUL character anywhere in a request: path, query string or JSON body.

PostgreSQL text cannot hold NUL, so such a value would reach the database only to fail there as
a server error. One check for every route, run as an app-wide dependency once FastAPI has read
the body, turns it into a 422 naming the field instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

NUL = "\x00"
MESSAGE = "Text must not contain NUL characters."
# NUL can only enter a JSON document as this escape: a body without it needs no parsing.
_JSON_NUL_ESCAPE = b"\\u0000"

Location = tuple[str | int, ...]


def _nul_locations(value: Any, loc: Location) -> Iterator[Location]:
    if isinstance(value, str):
        if NUL in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield (*loc, key)
            yield from _nul_locations(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, (*loc, index))


async def _body_locations(request: Request) -> list[Location]:
    route = request.scope.get("route")
    # Only a body the route reads can carry a value anywhere; its bytes are already read.
    if not isinstance(route, APIRoute) or route.body_field is None:
        return []
    body = await request.body()
    if _JSON_NUL_ESCAPE not in body:
        return []
    try:
        document = json.loads(body)
    except ValueError:
        # Not JSON: FastAPI's own validation answers for it.
        return []
    return list(_nul_locations(document, ("body",)))


async def reject_nul_characters(connection: HTTPConnection) -> None:
    # HTTPConnection, not Request: the app-wide dependency runs for the WebSocket route too.
    locations: list[Location] = []
    if NUL in connection.url.path:
        locations.append(("path",))
    locations.extend(
        ("query", key)
        for key, value in connection.query_params.multi_items()
        if NUL in key or NUL in value
    )
    if isinstance(connection, Request):
        locations.extend(await _body_locations(connection))
    if locations:
        raise RequestValidationError(
            [{"type": "string_nul", "loc": loc, "msg": MESSAGE} for loc in locations]
        )
