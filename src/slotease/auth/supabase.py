"""Supabase mode: Supabase Auth owns the accounts, SlotEase reads auth.users and never writes it.

Where the project gives its URL and anon key, sign-up, password and refresh grants and
recovery go to Supabase Auth's HTTP API (GoTrue) as supabase-js would send them; the other
account operations (and all of them without those settings) answer `AccountsInSupabaseAuth`.
Erasure deletes the person's account through the admin API with the service-role key.
"""

from __future__ import annotations

import logging
from typing import Any, Literal
from uuid import UUID

import httpx

from slotease.auth.schemas import SessionOut, SessionUser, SignupPending
from slotease.config import Settings
from slotease.kit.problems import Problem

log = logging.getLogger(__name__)

Accounts = Literal["standalone", "supabase"]
CLIENT_INFO = "slotease"
# Supabase Auth's refusals that mean "these credentials do not sign in": SlotEase's 401.
UNAUTHORIZED_CODES = frozenset(
    {
        "invalid_credentials",
        "refresh_token_not_found",
        "refresh_token_already_used",
        "session_expired",
        "session_not_found",
    }
)


class AccountsInSupabaseAuth(Problem):
    """An account operation SlotEase does not do where Supabase Auth owns the accounts."""

    status, slug = 403, "accounts-in-supabase-auth"

    def __init__(self, settings: Settings) -> None:
        where = settings.supabase_auth_url or "the Supabase project's Auth API"
        super().__init__(
            "Accounts are managed by Supabase Auth on this deployment: sign up, sign in,"
            f" recover passwords and manage MFA through {where} (supabase-js `auth`), then"
            " call this API with its access token."
        )


class SupabaseAuthUnavailable(Problem):
    status, slug = 502, "supabase-auth-unavailable"


class SupabaseAuthRefused(Problem):
    """Supabase Auth's own refusal, with its status and message."""

    slug = "supabase-auth-refused"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class SupabaseAuth:
    """The calls SlotEase makes to a Supabase project's Auth API (`<SUPABASE_URL>/auth/v1`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def forwarding(self) -> bool:
        """Whether the public account routes can be forwarded (URL and anon key given)."""
        return bool(self.settings.supabase_auth_url and self.settings.supabase_anon_key)

    async def password_grant(self, email: str, password: str) -> dict[str, Any]:
        return await self._public(
            "/token", {"email": email, "password": password}, grant_type="password"
        )

    async def refresh_grant(self, refresh_token: str) -> dict[str, Any]:
        return await self._public(
            "/token", {"refresh_token": refresh_token}, grant_type="refresh_token"
        )

    async def sign_up(self, email: str, password: str, metadata: dict[str, str]) -> dict[str, Any]:
        """The session, or (when the project confirms addresses first) the new user alone."""
        return await self._public(
            "/signup", {"email": email, "password": password, "data": metadata}
        )

    async def recover(self, email: str) -> None:
        await self._public("/recover", {"email": email})

    async def delete_user(self, user_id: UUID) -> None:
        """Soft-delete the account, as erasure keeps rows and loses the words: Supabase Auth
        blanks the address, phone, password and metadata and ends the sessions. An account
        already gone is fine; a deployment without the service-role key cannot erase there."""
        key = self.settings.supabase_service_role_key
        base = self.settings.supabase_auth_url
        if not key or not base:
            raise SupabaseAuthUnavailable(
                "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are needed to erase an account"
                " that Supabase Auth owns."
            )
        headers = {"apikey": key, "Authorization": f"Bearer {key}", "X-Client-Info": CLIENT_INFO}
        response = await self._send(
            "DELETE", f"{base}/admin/users/{user_id}", {"should_soft_delete": True}, headers
        )
        if response.status_code != 404:
            _raise_for_refusal(response)

    async def _public(
        self, path: str, body: dict[str, Any], *, grant_type: str | None = None
    ) -> dict[str, Any]:
        if not self.forwarding:
            raise AccountsInSupabaseAuth(self.settings)
        anon_key = self.settings.supabase_anon_key
        assert anon_key is not None
        url = f"{self.settings.supabase_auth_url}{path}"
        if grant_type is not None:
            url += f"?grant_type={grant_type}"
        headers = {"apikey": anon_key, "X-Client-Info": CLIENT_INFO}
        response = await self._send("POST", url, body, headers)
        _raise_for_refusal(response)
        answer: Any = response.json() if response.content else {}
        return answer if isinstance(answer, dict) else {}

    async def _send(
        self, method: str, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.settings.provider_timeout_seconds) as http:
                return await http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("Supabase Auth did not answer %s %s: %s", method, url, exc)
            raise SupabaseAuthUnavailable("Supabase Auth did not answer; try again.") from exc


def _raise_for_refusal(response: httpx.Response) -> None:
    """Supabase Auth's 4xx as a problem of the same status and message (a bad password is a
    401, as SlotEase's own), anything else unexpected as a 502."""
    if response.is_success:
        return
    if not response.is_client_error:
        log.warning("Supabase Auth answered %s: %s", response.status_code, response.text[:500])
        raise SupabaseAuthUnavailable("Supabase Auth could not answer; try again.")
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    message = next(
        (
            str(answer[field])
            for field in ("msg", "message", "error_description", "error")
            if answer.get(field)
        ),
        "Supabase Auth refused the request.",
    )
    status = response.status_code
    if answer.get("error_code") in UNAUTHORIZED_CODES or answer.get("error") == "invalid_grant":
        status = 401
    raise SupabaseAuthRefused(status, message)


def _session_user(user: Any) -> SessionUser:
    metadata = user.get("user_metadata") or {}
    name = metadata.get("full_name") or metadata.get("name") or ""
    return SessionUser(id=user["id"], email=user.get("email") or "", full_name=str(name))


def session_of(answer: dict[str, Any]) -> SessionOut:
    """Supabase Auth's session (`{access_token, refresh_token, expires_in, user}`) as
    SlotEase's; an answer without one is Supabase Auth misbehaving (502)."""
    try:
        return SessionOut(
            user=_session_user(answer["user"]),
            access_token=answer["access_token"],
            refresh_token=answer["refresh_token"],
            expires_in=int(answer["expires_in"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SupabaseAuthUnavailable("Supabase Auth answered without a session.") from exc


def signup_outcome(answer: dict[str, Any]) -> SessionOut | SignupPending:
    """A sign-up answers a session, or (addresses confirmed first) the bare user."""
    if "access_token" in answer:
        return session_of(answer)
    try:
        return SignupPending(user=_session_user(answer.get("user", answer)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SupabaseAuthUnavailable("Supabase Auth answered without the new user.") from exc
