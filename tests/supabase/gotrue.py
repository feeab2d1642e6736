"""A stand-in for a Supabase project's Auth API (GoTrue) on the test project's database: it
checks requests as GoTrue does (the `apikey` header, JSON bodies, the grant in the query,
the service-role key on the admin API), writes users into auth.users as GoTrue does, signs
ES256 tokens with a key it publishes at `/auth/v1/.well-known/jwks.json`, and records what it
was asked."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.supabase import project

ANON_KEY = "anon-" + "a" * 40
SERVICE_ROLE_KEY = "service-" + "s" * 40
KID = "gotrue-es256-1"

Answer = tuple[int, dict[str, Any]]


@dataclass
class GoTrue:
    """What the stand-in knows: its database, passwords and refresh tokens, its signing key,
    and every request it received (method, path, query, headers, body)."""

    database: str
    url: str = ""
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    passwords: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, uuid.UUID] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # As a project that confirms addresses first (GOTRUE_MAILER_AUTOCONFIRM off): sign-up
    # answers the new user alone.
    confirm_first: bool = False

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KID, "alg": "ES256", "use": "sig"}]}

    def token_for(self, user_id: uuid.UUID, email: str, metadata: dict[str, Any]) -> str:
        return project.access_token(
            user_id,
            email,
            self.key,
            algorithm="ES256",
            kid=KID,
            metadata=metadata,
            issuer=f"{self.url}/auth/v1",
        )

    def _user(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        with psycopg.connect(self.database) as conn:
            row = conn.execute(
                "select id, email, raw_user_meta_data from auth.users where id = %s", (user_id,)
            ).fetchone()
        if row is None:
            return None
        return {
            "id": str(row[0]),
            "aud": "authenticated",
            "role": "authenticated",
            "email": row[1],
            "user_metadata": row[2] or {},
        }

    def _session(self, user_id: uuid.UUID) -> Answer:
        user = self._user(user_id)
        assert user is not None
        refresh_token = secrets.token_urlsafe(9)
        self.refresh_tokens[refresh_token] = user_id
        token = self.token_for(user_id, user["email"], user["user_metadata"])
        return 200, {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 3600,
            "expires_at": int(time.time()) + 3600,
            "refresh_token": refresh_token,
            "user": user,
        }

    def answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Any,
        body: dict[str, Any],
    ) -> Answer:
        if not path.startswith("/auth/v1/"):
            return 404, {"code": 404, "error_code": "not_found", "msg": "Not found"}
        route = path.removeprefix("/auth/v1")
        if method == "GET" and route == "/.well-known/jwks.json":
            return 200, self.jwks
        if route.startswith("/admin/"):
            return self._admin(method, route, headers, body)
        if headers.get("apikey") != ANON_KEY:
            return 401, {"message": "Invalid API key"}
        if headers.get("Content-Type") != "application/json":
            return 400, {"code": 400, "error_code": "bad_json", "msg": "Expected JSON"}
        if (method, route) == ("POST", "/signup"):
            return self._sign_up(body)
        if (method, route) == ("POST", "/recover"):
            return (200, {}) if body.get("email") else (422, {"msg": "email required"})
        if (method, route) == ("POST", "/token"):
            grant = query.get("grant_type", [""])[0]
            if grant == "password":
                return self._password(body)
            if grant == "refresh_token":
                user_id = self.refresh_tokens.pop(str(body.get("refresh_token")), None)
                if user_id is None:
                    return 400, {
                        "code": 400,
                        "error_code": "refresh_token_not_found",
                        "msg": "Invalid Refresh Token: Refresh Token Not Found",
                    }
                return self._session(user_id)
            return 400, {"code": 400, "error_code": "validation_failed", "msg": "bad grant"}
        return 404, {"code": 404, "error_code": "not_found", "msg": "Not found"}

    def _sign_up(self, body: dict[str, Any]) -> Answer:
        email, password = str(body.get("email", "")), str(body.get("password", ""))
        if not email or len(password) < 6:
            return 422, {"code": 422, "error_code": "weak_password", "msg": "Password too short"}
        if email in self.passwords:
            return 422, {
                "code": 422,
                "error_code": "user_already_exists",
                "msg": "User already registered",
            }
        with psycopg.connect(self.database, autocommit=True) as conn:
            user_id, _ = project.insert_user(conn, email=email, metadata=body.get("data") or {})
        self.passwords[email] = password
        if self.confirm_first:
            user = self._user(user_id)
            assert user is not None
            return 200, user
        return self._session(user_id)

    def _password(self, body: dict[str, Any]) -> Answer:
        email = str(body.get("email", ""))
        if self.passwords.get(email) != body.get("password"):
            return 400, {
                "code": 400,
                "error_code": "invalid_credentials",
                "msg": "Invalid login credentials",
            }
        with psycopg.connect(self.database) as conn:
            row = conn.execute("select id from auth.users where email = %s", (email,)).fetchone()
        assert row is not None
        return self._session(row[0])

    def _admin(self, method: str, route: str, headers: Any, body: dict[str, Any]) -> Answer:
        if (
            headers.get("apikey") != SERVICE_ROLE_KEY
            or headers.get("Authorization") != f"Bearer {SERVICE_ROLE_KEY}"
        ):
            return 403, {"code": 403, "error_code": "not_admin", "msg": "User not allowed"}
        _, _, user_id = route.partition("/admin/users/")
        if method != "DELETE" or not user_id:
            return 404, {"code": 404, "error_code": "not_found", "msg": "Not found"}
        if not body.get("should_soft_delete"):
            return 400, {"msg": "this stand-in only soft-deletes, as SlotEase asks"}
        # models.User.SoftDeleteUser: the address and phone obfuscated, no password, no
        # metadata, deleted_at set; the row stays.
        with psycopg.connect(self.database, autocommit=True) as conn:
            done = conn.execute(
                "update auth.users set email = encode(sha256(convert_to(id::text, 'UTF8')), 'hex')"
                " || '@deleted.invalid', phone = null, encrypted_password = null,"
                " raw_user_meta_data = '{}', raw_app_meta_data = '{}', deleted_at = now()"
                " where id = %s",
                (uuid.UUID(user_id),),
            )
            if done.rowcount == 0:
                return 404, {"code": 404, "error_code": "user_not_found", "msg": "User not found"}
            conn.execute("delete from auth.identities where user_id = %s", (uuid.UUID(user_id),))
        return 200, {}


def _handler(gotrue: GoTrue) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            parts = urlsplit(self.path)
            body = json.loads(raw) if raw else {}
            query = parse_qs(parts.query)
            with gotrue.lock:
                gotrue.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": query,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                status, payload = gotrue.answer(self.command, parts.path, query, self.headers, body)
            data = json.dumps(payload).encode()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

    return Handler


@contextlib.contextmanager
def serve(database: str) -> Iterator[GoTrue]:
    """The stand-in on a free local port, writing to `database` as supabase_auth_admin."""
    gotrue = GoTrue(database=database)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gotrue))
    gotrue.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gotrue
    finally:
        server.shutdown()
        server.server_close()
