"""`/openapi.json` declares every answer: each error status an operation can give carries the
problem body it really has, and the shared refusals are declared wherever they can occur."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

PROBLEM_JSON = "application/problem+json"


async def _schema(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    schema: dict[str, Any] = answer.json()
    return schema


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


async def test_every_error_status_of_every_operation_is_a_problem(
    client: httpx.AsyncClient,
) -> None:
    schema = await _schema(client)
    undeclared = []
    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, status) == ("/ready", "503"):
                continue
            content = response.get("content", {})
            expected = "ValidationProblem" if status == "422" else "Problem"
            ref = content.get(PROBLEM_JSON, {}).get("schema", {}).get("$ref", "")
            if set(content) != {PROBLEM_JSON} or not ref.endswith(f"/{expected}"):
                undeclared.append(f"{method.upper()} {path} {status}")
    assert undeclared == []
    problems = schema["components"]["schemas"]
    assert problems["ValidationProblem"]["properties"]["errors"]["type"] == "array"
    assert set(problems["Problem"]["required"]) == {"type", "title", "status", "detail"}
    assert "HTTPValidationError" not in problems


async def test_shared_refusals_are_declared_where_they_can_occur(
    client: httpx.AsyncClient,
) -> None:
    missing = []
    for path, method, operation in _operations(await _schema(client)):
        expected = {"413", "422"}
        if path.startswith("/v1/"):
            expected |= {"401", "429"}
        if "requestBody" in operation:
            expected.add("400")
        if "{" in path:
            expected.add("404")
        missing += [f"{method.upper()} {path} {s}" for s in expected - set(operation["responses"])]
    assert missing == []


async def test_answers_without_json_bodies_are_declared_as_they_are(
    client: httpx.AsyncClient,
) -> None:
    paths = (await _schema(client))["paths"]
    download = paths["/v1/analytics/report/{report_id}/download"]["get"]["responses"]["200"]
    assert set(download["content"]) == {"text/csv", "application/json", "application/pdf"}
    assert "content" not in paths["/v1/auth/logout"]["post"]["responses"]["204"]
    assert set(paths["/ready"]["get"]["responses"]) >= {"200", "503"}
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {
        "text/plain; version=1.0.0; charset=utf-8"
    }
