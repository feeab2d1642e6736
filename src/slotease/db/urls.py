"""Connection strings: the owner's (migrations, maintenance) and the app's RLS-bound login role."""

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
        return make_conninfo(_strip_driver(settings.database_url))
    return make_conninfo(_embedded(str(settings.data_dir)))


def app_conninfo(settings: Settings) -> str:
    """The request path's connection: a NOINHERIT role that only acts through SET ROLE."""
    if settings.app_database_url:
        return make_conninfo(_strip_driver(settings.app_database_url))
    params = {k: str(v) for k, v in conninfo_to_dict(owner_conninfo(settings)).items()}
    params.pop("password", None)
    params["user"] = settings.app_db_role
    if settings.app_db_password:
        params["password"] = settings.app_db_password
    return make_conninfo(**params)


def _strip_driver(url: str) -> str:
    # Accept SQLAlchemy-style URLs (postgresql+psycopg://) as well as libpq ones.
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        return f"{scheme.split('+', 1)[0]}://{rest}"
    return url
