"""HTTP routes of sign-up, tokens, the current user and API keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["auth"])
