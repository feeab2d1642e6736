from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from slotease.config import Settings
from slotease.kit.logs import JsonFormatter
from tests.kit.apps import build_app, served

pytestmark = pytest.mark.anyio

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the process's JSON log handler would print, for every logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous_level)


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_request_id_is_echoed_or_generated(settings: Settings) -> None:
    async with served(build_app(settings)) as http:
        echoed = await http.get("/health", headers={"X-Request-ID": "edge-42.a_B"})
        assert echoed.headers["X-Request-ID"] == "edge-42.a_B"

        generated = await http.get("/health")
        assert GENERATED_ID.fullmatch(generated.headers["X-Request-ID"])
        again = await http.get("/health")
        assert again.headers["X-Request-ID"] != generated.headers["X-Request-ID"]

        for unsafe in ("a" * 129, "with space", "new\\nline", "<script>"):
            replaced = await http.get("/health", headers={"X-Request-ID": unsafe})
            assert GENERATED_ID.fullmatch(replaced.headers["X-Request-ID"]), unsafe

        # Errors carry it too.
        missing = await http.get("/v1/nowhere", headers={"X-Request-ID": "req-404"})
        assert missing.status_code == 404
        assert missing.headers["X-Request-ID"] == "req-404"


async def test_access_log_is_one_json_object_with_the_request_id(
    settings: Settings, json_lines: io.StringIO
) -> None:
    async with served(build_app(settings)) as http:
        await http.get("/v1/nowhere", headers={"X-Request-ID": "trace-me-1"})
    access = [entry for entry in parsed(json_lines) if entry["logger"] == "slotease.access"]
    assert len(access) == 1
    entry = access[0]
    assert entry["request_id"] == "trace-me-1"
    assert entry["level"] == "INFO"
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/nowhere"
    assert entry["route"] == "unmatched"
    assert entry["status"] == 404
    assert isinstance(entry["duration_ms"], float)
    assert entry["message"] == "GET /v1/nowhere 404"
    assert str(entry["timestamp"]).endswith("+00:00")


async def test_access_log_names_the_client_the_rate_limiter_counts(
    settings: Settings, json_lines: io.StringIO
) -> None:
    app = build_app(settings, trust_forwarded_for=True)
    async with served(app, "10.0.0.9") as http:
        await http.get("/health", headers={"X-Forwarded-For": "192.0.2.1, 198.51.100.23"})
    (entry,) = [entry for entry in parsed(json_lines) if entry["logger"] == "slotease.access"]
    assert entry["client"] == "198.51.100.23"


async def test_unexpected_error_is_a_bare_500_problem_and_logged_with_its_id(
    settings: Settings, json_lines: io.StringIO
) -> None:
    async with served(build_app(settings)) as http:
        response = await http.get("/v1/test/boom", headers={"X-Request-ID": "crash-7"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Request-ID"] == "crash-7"
    body = response.json()
    assert body["status"] == 500
    assert set(body) == {"type", "title", "status", "detail"}
    assert "hunter2" not in response.text
    assert "Boom" not in response.text

    entries = parsed(json_lines)
    errors = [entry for entry in entries if entry["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "crash-7"
    assert "Boom" in str(errors[0]["exception"])
    access = [entry for entry in entries if entry["logger"] == "slotease.access"]
    assert access[0]["status"] == 500
    assert access[0]["route"] == "/v1/test/boom"


async def test_framework_errors_are_problems(settings: Settings) -> None:
    async with served(build_app(settings)) as http:
        not_allowed = await http.delete("/health")
        assert not_allowed.status_code == 405
        assert not_allowed.headers["content-type"] == "application/problem+json"
        assert not_allowed.headers["Allow"] == "GET"
        assert not_allowed.json()["status"] == 405

        invalid = await http.post(
            "/v1/test/echo", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert invalid.status_code == 422
        assert invalid.headers["content-type"] == "application/problem+json"
        assert invalid.json()["errors"][0]["loc"][0] == "body"

        wrong_type = await http.post("/v1/test/echo", json=[1, 2])
        assert wrong_type.status_code == 422
        assert wrong_type.json()["type"].endswith("/validation-error")
