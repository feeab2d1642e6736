"""A database prepared the way a Supabase project's is: Supabase's roles, Supabase Auth's own
schema (its real migrations, tests/fixtures/supabase_auth, owned by supabase_auth_admin), and
users inserted the way Supabase Auth inserts them, with tokens shaped like the ones it signs."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "supabase_auth"
# Supabase Auth renders its migrations with its namespace (GOTRUE_DB_NAMESPACE, `auth`).
NAMESPACE = re.compile(r"\{\{\s*index \.Options \"Namespace\"\s*\}\}")
# The role that stands for a project's `postgres`: not a superuser, owner of the database,
# with what Supabase gives that role (LOGIN CREATEROLE CREATEDB BYPASSRLS, and the API roles
# with admin option so that it may grant them).
OWNER = "supabase_owner"
AUTH_ADMIN = "supabase_auth_admin"
# The login role of Supabase's API servers (PostgREST), which SlotEase's API uses there.
LOGIN = "authenticator"
# Supabase Auth's instance id for every user (it predates multi-tenancy).
INSTANCE_ID = uuid.UUID(int=0)
# A bcrypt hash, as Supabase Auth stores passwords; nothing here checks it.
PASSWORD_HASH = "$2a$10$" + "x" * 53
SUPABASE_URL = "http://supabase.test"
ISSUER = f"{SUPABASE_URL}/auth/v1"

Conn = psycopg.Connection[Any]

_ROLES = f"""
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = '{LOGIN}') then
    create role {LOGIN} login noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = '{AUTH_ADMIN}') then
    create role {AUTH_ADMIN} login noinherit createrole;
  end if;
  if not exists (select 1 from pg_roles where rolname = '{OWNER}') then
    create role {OWNER} login createrole createdb bypassrls;
  end if;
  -- Supabase Auth's migrations grant to `postgres` by name.
  if not exists (select 1 from pg_roles where rolname = 'postgres') then
    create role postgres nologin;
  end if;
end
$$;
grant anon, authenticated, service_role to {LOGIN};
grant anon, authenticated, service_role to {OWNER} with admin option;
"""


def with_user(conninfo: str, user: str, dbname: str | None = None) -> str:
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    params.pop("password", None)
    params["user"] = user
    if dbname is not None:
        params["dbname"] = dbname
    return make_conninfo(**params)


def auth_migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every Supabase Auth migration, in its order, rendered as it renders
    them."""
    files = sorted((FIXTURES / "migrations").glob("*.up.sql"))
    return [(path.name.split("_", 1)[0], NAMESPACE.sub("auth", path.read_text())) for path in files]


def create_project(server_conninfo: str, name: str) -> str:
    """A new database `name` shaped like a Supabase project's, with Supabase Auth's schema
    migrated; its conninfo as the owner (`OWNER`)."""
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        # Roles belong to the server: concurrent test runs create them once.
        conn.execute("select pg_advisory_lock(hashtext('slotease-supabase-roles'))")
        try:
            conn.execute(_ROLES)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext('slotease-supabase-roles'))")
        conn.execute(
            sql.SQL("create database {} owner {}").format(
                sql.Identifier(name), sql.Identifier(OWNER)
            )
        )
    database = make_conninfo(server_conninfo, dbname=name)
    with psycopg.connect(database, autocommit=True) as conn:
        # As Supabase's own superuser does before Supabase Auth first starts.
        conn.execute(f"create schema auth authorization {AUTH_ADMIN}")
        conn.execute(f"grant usage on schema auth to anon, authenticated, service_role, {OWNER}")
        conn.execute(f"set role {AUTH_ADMIN}")
        conn.execute("set search_path = auth")
        for version, script in auth_migrations():
            with conn.transaction():
                conn.execute(script)
                if version != "00":
                    conn.execute(
                        "insert into auth.schema_migrations (version) values (%s)", (version,)
                    )
        # What a project's postgres role holds on auth: reading it (granted by the migrations
        # to `postgres`), referencing users and putting triggers on them; no writes.
        conn.execute(f"grant select on all tables in schema auth to {OWNER} with grant option")
        conn.execute(f"grant references, trigger on auth.users to {OWNER}")
        conn.execute(f"grant execute on all functions in schema auth to {OWNER}")
    return with_user(database, OWNER)


def drop_project(server_conninfo: str, name: str) -> None:
    """Drop the database, and the role memberships its migration granted: they belong to the
    server, and from PostgreSQL 16 on each grantor's grant is one of its own, which the other
    tests' revocations (as the superuser) would not remove."""
    with psycopg.connect(server_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        granted = conn.execute(
            "select r.rolname, m.rolname from pg_auth_members a"
            " join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member"
            " where a.grantor = %s::regrole",
            (OWNER,),
        ).fetchall()
        for role, member in granted:
            conn.execute(
                sql.SQL("revoke {} from {} granted by {}").format(
                    sql.Identifier(role), sql.Identifier(member), sql.Identifier(OWNER)
                )
            )


def apply_as_owner(owner_conninfo: str, script: str) -> None:
    """`script` run as the SQL editor runs it: one text, as the non-superuser owner."""
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        assert conn.execute(
            "select rolsuper from pg_roles where rolname = current_user"
        ).fetchone() == (False,)
        conn.execute(script)


def insert_user(
    auth_admin: Conn, *, email: str | None = None, metadata: dict[str, Any] | None = None
) -> tuple[uuid.UUID, str]:
    """A user as Supabase Auth's sign-up inserts one (models.NewUser, then its identity),
    on a connection acting as supabase_auth_admin; the user's id and address."""
    user_id = uuid.uuid4()
    email = email or f"person-{user_id.hex[:10]}@example.com"
    app_metadata = {"provider": "email", "providers": ["email"]}
    auth_admin.execute(
        "insert into auth.users (instance_id, id, aud, role, email, encrypted_password,"
        " email_confirmed_at, confirmation_token, recovery_token, email_change_token_new,"
        " email_change, raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at,"
        " updated_at, is_sso_user, is_anonymous)"
        " values (%(instance)s, %(id)s, 'authenticated', 'authenticated', %(email)s,"
        " %(password)s, now(), '', '', '', '', %(app)s, %(user)s, null, now(), now(),"
        " false, false)",
        {
            "instance": INSTANCE_ID,
            "id": user_id,
            "email": email,
            "password": PASSWORD_HASH,
            "app": json.dumps(app_metadata),
            "user": json.dumps(metadata or {}),
        },
    )
    identity = {"sub": str(user_id), "email": email, "email_verified": False}
    auth_admin.execute(
        "insert into auth.identities (provider_id, user_id, identity_data, provider,"
        " last_sign_in_at, created_at, updated_at)"
        " values (%(id)s, %(user)s, %(data)s, 'email', now(), now(), now())",
        {"id": str(user_id), "user": user_id, "data": json.dumps(identity)},
    )
    return user_id, email


def access_token(
    user_id: uuid.UUID,
    email: str,
    key: Any,
    *,
    algorithm: str = "HS256",
    kid: str | None = None,
    metadata: dict[str, Any] | None = None,
    issuer: str = ISSUER,
) -> str:
    """An access token with the claims Supabase Auth puts in its users' tokens."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": str(user_id),
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": email,
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": metadata or {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)
