"""Assertions shared by the organization tests."""

from __future__ import annotations

import httpx


def assert_invalid(response: httpx.Response, *fields: str) -> None:
    """A 422 problem document whose `errors` name each of `fields` in some `loc`."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert isinstance(body["errors"], list)
    assert body["errors"]
    locations = [part for error in body["errors"] for part in error["loc"]]
    for field in fields:
        assert field in locations, (field, body["errors"])


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
