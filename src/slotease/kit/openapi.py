"""The OpenAPI document declares every answer: the problems each operation can give, once.

Routes declare their own success answers and the refusals particular to them (`responses=`,
usually with a description only); this hook gives every error answer the problem body it
really has and adds the refusals that come from the shared layers:

- 400 (a body that cannot be decoded) where an operation reads a body;
- 401 (bad credentials) and 403/409 (a write refused, or conflicting with the state) on the API;
- 404 (an id that names no visible row) where the path has parameters or the query or body
  carries an id (`..._id`);
- 413 (body limit), 422 (validation, NUL characters, values out of range) everywhere;
- 429 (rate limit) wherever the limiter counts;
- 503 (the database unreachable, or too slow to answer) on the API.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from slotease.kit.problems import PROBLEM_JSON

Schema = dict[str, Any]
Responses = dict[int | str, dict[str, Any]]

# The refusals routes declare, each described once. A route adds the ones particular to it
# (`responses={**ADMIN_ONLY, 409: {"description": ...}}`); the hook below gives every one
# its problem body.
SIGNED_IN: Responses = {401: {"description": "Missing or invalid credentials"}}
NOT_FOUND: Responses = {404: {"description": "Unknown, or not visible to the caller"}}
ADMIN_ONLY: Responses = {
    **SIGNED_IN,
    403: {"description": "Visible, but the caller is not an admin of the organization"},
    **NOT_FOUND,
}
STAFF_ONLY: Responses = {
    **SIGNED_IN,
    403: {"description": "Visible, but the caller is not staff of the organization"},
    **NOT_FOUND,
}

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
VALIDATION_PROBLEM_REF = {"$ref": "#/components/schemas/ValidationProblem"}
_COMPONENT = "#/components/schemas/"
WRITES = frozenset({"post", "put", "patch", "delete"})
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

_PROBLEM: Schema = {
    "type": "object",
    "description": "An RFC 9457 problem.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}
_VALIDATION_PROBLEM: Schema = {
    **_PROBLEM,
    "description": "An RFC 9457 problem for a request that is not valid, naming each field.",
    "properties": {
        **_PROBLEM["properties"],
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}


def _names_an_id(operation: Schema, components: Schema) -> bool:
    parameters = operation.get("parameters", ())
    if any(p.get("in") == "path" or p.get("name", "").endswith("_id") for p in parameters):
        return True
    for media in operation.get("requestBody", {}).get("content", {}).values():
        body = media.get("schema", {})
        ref = str(body.get("$ref", ""))
        if ref.startswith(_COMPONENT):
            body = components.get(ref.removeprefix(_COMPONENT), {})
        if any(name.endswith("_id") for name in body.get("properties", {})):
            return True
    return False


def _shared_statuses(
    path: str, method: str, operation: Schema, components: Schema, unlimited: Collection[str]
) -> list[int]:
    statuses = [413, 422]
    if "requestBody" in operation:
        statuses.append(400)
    if path.startswith("/v1/"):
        statuses += [401, 503]
        if method in WRITES:
            statuses += [403, 409]
    if _names_an_id(operation, components):
        statuses.append(404)
    if path not in unlimited:
        statuses.append(429)
    return statuses


def declare_problems(schema: Schema, unlimited: Collection[str]) -> None:
    """Declare, in `schema`, the problem answers of every operation (see the module doc)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = _PROBLEM
    components["ValidationProblem"] = _VALIDATION_PROBLEM
    for name in _FASTAPI_VALIDATION:
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses: Schema = operation.setdefault("responses", {})
            for shared in _shared_statuses(path, method, operation, components, unlimited):
                responses.setdefault(str(shared), {"description": HTTPStatus(shared).phrase})
            for status, response in responses.items():
                if int(status) < 400 or _is_own_body(response):
                    continue
                ref = VALIDATION_PROBLEM_REF if status == "422" else PROBLEM_REF
                response["content"] = {PROBLEM_JSON: {"schema": ref}}


def _is_own_body(response: Schema) -> bool:
    """A route's error answer with a body of its own (such as `/ready`'s 503), kept as it is;
    FastAPI's default 422 is replaced."""
    content: Schema = response.get("content") or {}
    schemas = [str(media.get("schema", {}).get("$ref", "")) for media in content.values()]
    return bool(content) and not any(ref.endswith(_FASTAPI_VALIDATION) for ref in schemas)


def problem_openapi(app: FastAPI, unlimited: Collection[str]) -> Callable[[], Schema]:
    """`app.openapi` with the problem answers declared; built once, like FastAPI's own."""
    generate = app.openapi

    def openapi() -> Schema:
        if app.openapi_schema is None:
            schema = generate()
            declare_problems(schema, unlimited)
        return app.openapi_schema or {}

    return openapi
