"""HTTP routes of organizations, members, services, working hours and closures."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["organizations"])
