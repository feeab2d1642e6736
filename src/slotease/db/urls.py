"""Connection strings: the owner's (migrations), the API's RLS-bound login role and the worker's."""

from __future__ import annotations

from functools import lru_cache

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from slotease.config import Settings
from slotease.db.embedded import embedded_database_url


@lru_cache(maxsize=4)
def _embedded(data_dir: str) -> str:
    from pathlib import Path

    return embedded_database_url(Path(data_dir))


def owner_conninfo(settings: Settings) -> str:
    """The schema owner's connection: it runs migrations and nothing on the request path."""
    if settings.database_url:
        return make_conninfo(strip_driver(settings.database_url))
    return make_conninfo(_embedded(str(settings.data_dir)))


def app_conninfo(settings: Settings) -> str:
    """The request path's connection: a NOINHERIT role that can become only anon and
    authenticated."""
    return _login_conninfo(
        settings, settings.app_database_url, settings.app_db_role, settings.app_db_password
    )


def worker_conninfo(settings: Settings) -> str:
    """The connection of jobs and maintenance: a NOINHERIT role that may become service_role."""
    return _login_conninfo(
        settings, settings.worker_database_url, settings.worker_db_role, settings.worker_db_password
    )


def _login_conninfo(settings: Settings, url: str | None, role: str, password: str | None) -> str:
    """`url` when configured, else the owner's connection with the user swapped for `role`."""
    if url:
        return make_conninfo(strip_driver(url))
    params = {k: str(v) for k, v in conninfo_to_dict(owner_conninfo(settings)).items()}
    params.pop("password", None)
    params["user"] = role
    if password:
        params["password"] = password
    return make_conninfo(**params)


def strip_driver(url: str) -> str:
    """A libpq URL from a libpq or SQLAlchemy-style (`postgresql+psycopg://`) one."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        return f"{scheme.split('+', 1)[0]}://{rest}"
    return url
