"""The web pages (server-rendered, outside /v1), their sign-in forms and the session cookie.

Pages carry no data: their scripts fetch it from the JSON API with an access token obtained
from `POST /session/token`. Every form and that endpoint check a double-submit CSRF token.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from slotease.auth import service as auth_service
from slotease.auth.deps import ClientAddressDep, ContextDep, ServiceDbDep
from slotease.auth.principal import Principal
from slotease.auth.schemas import (
    MfaGrant,
    PasswordChange,
    PasswordGrant,
    PasswordReset,
    SessionOut,
    SignupPending,
    SignupRequest,
    VerificationRequest,
)
from slotease.context import app_context
from slotease.db.database import Connection
from slotease.kit.eventtypes import WEBHOOK_EVENTS
from slotease.kit.problems import (
    Forbidden,
    NotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
)
from slotease.web.qr import qr_svg

HERE = Path(__file__).parent
STATIC = (HERE / "static").resolve()
templates = Jinja2Templates(directory=HERE / "templates")

SESSION_COOKIE = "slotease_session"
CSRF_COOKIE = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src {connect}; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# A host as a CSP source may name it: anything else is left out rather than written into
# the header.
_HOST_SOURCE = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")

router = APIRouter(include_in_schema=False)


# ---------------------------------------------------------------------------------------
# Rendering, cookies and CSRF.
# ---------------------------------------------------------------------------------------
def _secure(request: Request) -> bool:
    configured = app_context(request).settings.secure_cookies
    return request.url.scheme == "https" if configured is None else configured


def content_security_policy(request: Request) -> str:
    """Scripts may connect to this origin only: the API, and the realtime WebSocket on the
    same host. CSP3 counts that socket as 'self', browsers before it did not; naming it keeps
    them working without allowing any other host."""
    connect = "'self'"
    host = request.headers.get("host", "")
    if _HOST_SOURCE.fullmatch(host):
        connect += f" {'wss' if _secure(request) else 'ws'}://{host}"
    return CONTENT_SECURITY_POLICY.format(connect=connect)


def _csrf_token(request: Request) -> str:
    current = request.cookies.get(CSRF_COOKIE, "")
    # Only a value this code could have issued is reused, so a planted odd cookie is replaced.
    return current if len(current) == 43 and current.isascii() else secrets.token_urlsafe(32)


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    csrf = _csrf_token(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "csrf": csrf,
            "signed_in": SESSION_COOKIE in request.cookies,
            **context,
        },
        status_code=status_code,
        headers={**PAGE_HEADERS, "Content-Security-Policy": content_security_policy(request)},
    )
    if request.cookies.get(CSRF_COOKIE) != csrf:
        # Readable by the page's scripts on purpose: they echo it in the X-CSRF-Token header.
        response.set_cookie(CSRF_COOKIE, csrf, secure=_secure(request), samesite="strict", path="/")
    return response


def _csrf_matches(request: Request, presented: str | None) -> bool:
    expected = request.cookies.get(CSRF_COOKIE)
    return bool(expected and presented) and secrets.compare_digest(str(expected), str(presented))


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form, first value of each field; 403 unless its CSRF token matches."""
    fields = {
        key: values[0]
        for key, values in parse_qs((await request.body()).decode(errors="replace")).items()
    }
    if not _csrf_matches(request, fields.get(CSRF_FIELD)):
        raise Forbidden("The form's security token is missing or stale; reload the page.")
    return fields


FormDep = Annotated[dict[str, str], Depends(_form)]


def _local_path(target: str | None) -> str:
    """Where to go after signing in: only a path on this site, never another origin."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _start_session(request: Request, refresh_token: str, target: str | None) -> Response:
    response = RedirectResponse(_local_path(target), status_code=status.HTTP_303_SEE_OTHER)
    _set_session_cookie(request, response, refresh_token)
    return response


def _set_session_cookie(request: Request, response: Response, refresh_token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        refresh_token,
        httponly=True,
        secure=_secure(request),
        samesite="lax",
        path="/",
    )


def _signed_in_page(request: Request, template: str, **context: Any) -> Response:
    if SESSION_COOKIE not in request.cookies:
        target = quote(request.url.path, safe="/")
        return RedirectResponse(f"/login?next={target}", status_code=status.HTTP_303_SEE_OTHER)
    return render(request, template, **context)


# ---------------------------------------------------------------------------------------
# Sign-up, login, logout and the page token.
# ---------------------------------------------------------------------------------------
@router.get("/login")
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", next=_local_path(next))


@router.post("/login")
async def login(
    request: Request,
    form: FormDep,
    conn: ServiceDbDep,
    context: ContextDep,
    address: ClientAddressDep,
) -> Response:
    target = _local_path(form.get("next"))
    try:
        grant = PasswordGrant(
            grant_type="password", email=form.get("email", ""), password=form.get("password", "")
        )
    except ValidationError:
        outcome: SessionOut | Problem = Unauthorized()
    else:
        outcome = await auth_service.sign_in_with_password(conn, context, grant, address)
    if isinstance(outcome, auth_service.MfaRequired):
        return render(request, "login_code.html", next=target, mfa_token=outcome.mfa_token)
    if isinstance(outcome, TooManyRequests):
        page = render(
            request,
            "login.html",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            next=target,
            email=form.get("email", ""),
            error=outcome.detail,
        )
        page.headers.update(outcome.headers)
        return page
    if isinstance(outcome, Problem):
        # Anything but bad credentials (Supabase Auth's refusals in Supabase mode) says why.
        bad_credentials = outcome.status == status.HTTP_401_UNAUTHORIZED
        return render(
            request,
            "login.html",
            status_code=outcome.status,
            next=target,
            email=form.get("email", ""),
            error="The email or password is incorrect." if bad_credentials else outcome.detail,
        )
    return _start_session(request, outcome.refresh_token, target)


@router.post("/login/code")
async def login_code(
    request: Request,
    form: FormDep,
    conn: ServiceDbDep,
    context: ContextDep,
    address: ClientAddressDep,
) -> Response:
    """The sign-in's second step, for accounts with multi-factor sign-in on."""
    target = _local_path(form.get("next"))
    mfa_token = form.get("mfa_token", "")
    try:
        grant = MfaGrant(grant_type="mfa", mfa_token=mfa_token, code=form.get("code", ""))
    except ValidationError:
        outcome: SessionOut | Problem = Unauthorized("The code is not valid.")
    else:
        outcome = await auth_service.sign_in_with_mfa(conn, context, grant, address)
    if isinstance(outcome, Problem):
        return render(
            request,
            "login_code.html",
            status_code=status.HTTP_401_UNAUTHORIZED,
            next=target,
            mfa_token=mfa_token,
            error=outcome.detail,
        )
    return _start_session(request, outcome.refresh_token, target)


@router.get("/signup")
async def signup_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "signup.html", next=_local_path(next))


@router.post("/signup")
async def signup(
    request: Request, form: FormDep, conn: ServiceDbDep, context: ContextDep
) -> Response:
    target = _local_path(form.get("next"))
    entered = {key: form.get(key, "") for key in ("email", "full_name", "phone")}
    error, code = "", status.HTTP_422_UNPROCESSABLE_CONTENT
    try:
        body = SignupRequest(
            email=entered["email"],
            password=form.get("password", ""),
            full_name=entered["full_name"],
            phone=entered["phone"] or None,
        )
        session = await auth_service.sign_up(conn, context, body)
    except ValidationError as exc:
        error = _validation_text(exc)
    except Problem as exc:
        error, code = exc.detail, exc.status
    else:
        if isinstance(session, SignupPending):
            error = "Open the link sent to your address to confirm it, then log in."
            code = status.HTTP_202_ACCEPTED
        else:
            return _start_session(request, session.refresh_token, target)
    return render(request, "signup.html", status_code=code, next=target, error=error, **entered)


@router.get("/logout")
async def logout_page(request: Request) -> HTMLResponse:
    return render(request, "logout.html")


@router.post("/logout")
async def logout(request: Request, _: FormDep, conn: ServiceDbDep, context: ContextDep) -> Response:
    refresh_token = request.cookies.get(SESSION_COOKIE)
    # Supabase Auth's session ends with its refresh token's expiry once the cookie is gone.
    if refresh_token and context.accounts == "standalone":
        await auth_service.log_out(conn, refresh_token)
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=_secure(request), httponly=True)
    response.delete_cookie(CSRF_COOKIE, path="/", secure=_secure(request))
    return response


@router.post("/session/token")
async def session_token(request: Request, conn: ServiceDbDep, context: ContextDep) -> Response:
    if not _csrf_matches(request, request.headers.get(CSRF_HEADER)):
        return Forbidden("The X-CSRF-Token header must match the csrf cookie.").response()
    refresh_token = request.cookies.get(SESSION_COOKIE)
    token = (
        await auth_service.session_access_token(conn, context, refresh_token)
        if refresh_token
        else None
    )
    if token is None:
        response = Unauthorized("Sign in again: the session is over.").response()
        response.delete_cookie(SESSION_COOKIE, path="/", secure=_secure(request), httponly=True)
        return response
    answer = JSONResponse(
        {
            "access_token": token.access_token,
            "token_type": "bearer",
            "expires_in": token.expires_in,
        },
        headers={"Cache-Control": "no-store"},
    )
    if isinstance(token, SessionOut):
        # Supabase Auth replaced the refresh token: the cookie carries the new one.
        _set_session_cookie(request, answer, token.refresh_token)
    return answer


# ---------------------------------------------------------------------------------------
# Recovery and verification: the pages the emails' links open. The token is spent by the
# form's POST, never by opening the link, which mail scanners do on their own.
# ---------------------------------------------------------------------------------------
@router.get("/forgot-password")
async def forgot_password_page(request: Request) -> HTMLResponse:
    return render(request, "forgot_password.html")


@router.post("/forgot-password")
async def forgot_password(
    request: Request, form: FormDep, conn: ServiceDbDep, context: ContextDep
) -> HTMLResponse:
    email = form.get("email", "").strip()
    if email:
        try:
            await auth_service.request_recovery(conn, context, email[:320])
        except Problem as exc:
            return render(request, "forgot_password.html", status_code=exc.status, error=exc.detail)
    return render(request, "forgot_password.html", sent=True)


@router.get("/reset-password")
async def reset_password_page(request: Request, token: str = "") -> HTMLResponse:
    return render(request, "reset_password.html", token=token)


async def _spend_link(
    request: Request, template: str, token: str, spend: Callable[[], Awaitable[None]]
) -> HTMLResponse:
    """The link's page after `spend` used its token: done, or why not (the form again)."""
    try:
        await spend()
    except ValidationError as exc:
        return _form_error(request, template, _validation_text(exc), token=token)
    except Problem as exc:
        return _form_error(request, template, exc.detail, token=token)
    return render(request, template, done=True)


@router.post("/reset-password")
async def reset_password(request: Request, form: FormDep, conn: ServiceDbDep) -> HTMLResponse:
    token = form.get("token", "")

    async def spend() -> None:
        body = PasswordReset(token=token, new_password=form.get("new_password", ""))
        await auth_service.reset_password(conn, body)

    return await _spend_link(request, "reset_password.html", token, spend)


@router.get("/verify-email")
async def verify_email_page(request: Request, token: str = "") -> HTMLResponse:
    return render(request, "verify_email.html", token=token)


@router.post("/verify-email")
async def verify_email(request: Request, form: FormDep, conn: ServiceDbDep) -> HTMLResponse:
    token = form.get("token", "")

    async def spend() -> None:
        await auth_service.verify_email(conn, VerificationRequest(token=token).token)

    return await _spend_link(request, "verify_email.html", token, spend)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']).replace('_', ' ')}: {item['msg']}"
        for item in exc.errors()
    )


def _form_error(request: Request, template: str, error: str, **context: Any) -> HTMLResponse:
    return render(
        request, template, status_code=status.HTTP_400_BAD_REQUEST, error=error, **context
    )


# ---------------------------------------------------------------------------------------
# The account page: verification, password, multi-factor sign-in. Its forms act as the
# session's user, through the same rules as the API.
# ---------------------------------------------------------------------------------------
async def _account(conn: Connection, request: Request) -> Principal | None:
    refresh_token = request.cookies.get(SESSION_COOKIE)
    return await auth_service.act_as_session(conn, refresh_token) if refresh_token else None


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/login?next=/account", status_code=status.HTTP_303_SEE_OTHER)


async def _account_page(
    request: Request, conn: Connection, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    account = await auth_service.my_account(conn)
    return render(request, "account.html", status_code=status_code, account=account, **context)


def _managed_elsewhere(request: Request) -> HTMLResponse | None:
    """In Supabase mode the account page says where the account is managed, and its forms
    change nothing."""
    try:
        auth_service.require_own_accounts(app_context(request))
    except Problem as refusal:
        code = status.HTTP_200_OK if request.method == "GET" else refusal.status
        return render(request, "account.html", status_code=code, elsewhere=refusal.detail)
    return None


@router.get("/account")
async def account_page(request: Request, conn: ServiceDbDep) -> Response:
    elsewhere = _managed_elsewhere(request)
    if elsewhere is not None:
        return elsewhere
    if await _account(conn, request) is None:
        return _to_login(request)
    return await _account_page(request, conn)


async def _change_account(
    request: Request,
    conn: Connection,
    change: Callable[[Principal], Awaitable[None]],
    notice: str,
) -> Response:
    """Run `change` as the session's user; the account page again, with `notice` or what
    refused the change."""
    elsewhere = _managed_elsewhere(request)
    if elsewhere is not None:
        return elsewhere
    principal = await _account(conn, request)
    if principal is None:
        return _to_login(request)
    try:
        await change(principal)
    except ValidationError as exc:
        return await _account_page(request, conn, status_code=400, error=_validation_text(exc))
    except Problem as exc:
        return await _account_page(request, conn, status_code=exc.status, error=exc.detail)
    return await _account_page(request, conn, notice=notice)


@router.post("/account/password")
async def account_password(
    request: Request,
    form: FormDep,
    conn: ServiceDbDep,
    context: ContextDep,
    address: ClientAddressDep,
) -> Response:
    async def change(principal: Principal) -> None:
        body = PasswordChange(
            current_password=form.get("current_password", ""),
            new_password=form.get("new_password", ""),
        )
        await auth_service.change_password(conn, context, principal, body, address)

    return await _change_account(request, conn, change, "Your password is changed.")


@router.post("/account/verify")
async def account_resend_verification(request: Request, _: FormDep, conn: ServiceDbDep) -> Response:
    async def change(_: Principal) -> None:
        await auth_service.resend_verification(conn)

    return await _change_account(request, conn, change, "A new verification link is on its way.")


@router.post("/account/mfa")
async def account_mfa_enroll(request: Request, _: FormDep, conn: ServiceDbDep) -> Response:
    elsewhere = _managed_elsewhere(request)
    if elsewhere is not None:
        return elsewhere
    principal = await _account(conn, request)
    if principal is None:
        return _to_login(request)
    try:
        enrollment = await auth_service.enroll_mfa(conn, principal)
    except Problem as exc:
        return await _account_page(request, conn, status_code=exc.status, error=exc.detail)
    return render(
        request,
        "account_mfa.html",
        enrollment=enrollment,
        qr_svg=qr_svg(enrollment.otpauth_uri),
    )


@router.post("/account/mfa/confirm")
async def account_mfa_confirm(request: Request, form: FormDep, conn: ServiceDbDep) -> Response:
    async def change(_: Principal) -> None:
        await auth_service.confirm_mfa(conn, form.get("code", "")[:32])

    return await _change_account(request, conn, change, "Multi-factor sign-in is on.")


@router.post("/account/mfa/disable")
async def account_mfa_disable(request: Request, form: FormDep, conn: ServiceDbDep) -> Response:
    async def change(_: Principal) -> None:
        await auth_service.disable_mfa(conn, form.get("code", "")[:32])

    return await _change_account(request, conn, change, "Multi-factor sign-in is off.")


# ---------------------------------------------------------------------------------------
# Pages.
# ---------------------------------------------------------------------------------------
@router.get("/")
async def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/o/{org_id}")
async def organization(request: Request, org_id: UUID) -> HTMLResponse:
    return render(request, "organization.html", org_id=org_id)


@router.get("/o/{org_id}/s/{service_id}")
async def slots(request: Request, org_id: UUID, service_id: UUID) -> HTMLResponse:
    return render(request, "slots.html", org_id=org_id, service_id=service_id)


@router.get("/me/appointments")
async def my_appointments(request: Request) -> Response:
    return _signed_in_page(request, "appointments.html")


@router.get("/q/{queue_id}/join")
async def join_queue(request: Request, queue_id: UUID) -> Response:
    return _signed_in_page(request, "join.html", queue_id=queue_id)


@router.get("/t/{ticket_id}")
async def ticket(request: Request, ticket_id: UUID) -> Response:
    return _signed_in_page(request, "ticket.html", ticket_id=ticket_id)


@router.get("/invitations/{invitation_id}")
async def invitation(request: Request, invitation_id: UUID) -> Response:
    """Where an invitation's email links to: the invitee accepts or declines it here."""
    return _signed_in_page(request, "invitation.html", invitation_id=invitation_id)


@router.get("/board/{queue_id}")
async def board(request: Request, queue_id: UUID) -> HTMLResponse:
    return render(request, "board.html", queue_id=queue_id)


@router.get("/staff/{org_id}")
async def staff(request: Request, org_id: UUID) -> Response:
    return _signed_in_page(request, "staff.html", org_id=org_id)


@router.get("/admin/{org_id}")
async def admin(request: Request, org_id: UUID) -> Response:
    return _signed_in_page(request, "admin.html", org_id=org_id, section="dashboard")


# The admin area's management pages, by the path segment after the organization.
ADMIN_SECTIONS = {
    "services": "admin_services.html",
    "members": "admin_members.html",
    "api-keys": "admin_api_keys.html",
    "webhooks": "admin_webhooks.html",
    "audit": "admin_audit.html",
}


@router.get("/admin/{org_id}/{section}")
async def admin_section(request: Request, org_id: UUID, section: str) -> Response:
    template = ADMIN_SECTIONS.get(section)
    if template is None:
        raise NotFound("No such page.")
    return _signed_in_page(request, template, org_id=org_id, section=section, events=WEBHOOK_EVENTS)


@router.get("/static/{path:path}")
async def static_file(path: str) -> FileResponse:
    # Served by a route rather than a mount, so the app includes the web front end with one
    # include_router; resolving first keeps `..` from leaving the folder.
    file = (STATIC / path).resolve()
    if not file.is_file() or not file.is_relative_to(STATIC):
        raise NotFound("No such file.")
    return FileResponse(
        file, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )
