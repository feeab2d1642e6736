"""The keyring against the database: the start-up check every process makes, and the online
rotation of `slotease keys rotate`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from slotease.config import Settings
from slotease.db.database import ANONYMOUS, SERVICE, Database
from slotease.db.pools import worker_database
from slotease.db.queries import Row
from slotease.keys import repository as repo
from slotease.kit import crypto
from slotease.kit.crypto import DecryptionError, Keyring, KeyringError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
# Passes over one column before giving up on rows that stay busy (they are reported).
MAX_PASSES = 5


def _check_context(kid: str) -> str:
    return crypto.field_context("encryption_keys.check_value", kid)


async def _keys_to_register(db: Database, keyring: Keyring, *, as_service: bool) -> list[str]:
    """The keyring's key ids the database has no check value of yet, and the encrypting key
    when a rotation retired it (it seals values again); a KeyringError when a key does not
    open its check value, or when a key that may still seal values is absent."""
    async with db.transaction(SERVICE if as_service else ANONYMOUS) as conn:
        rows = await repo.key_checks(conn)
    for row in rows:
        kid = row["kid"]
        if kid not in keyring.keys:
            if row["retired_at"] is None:
                raise KeyringError(
                    f"SLOTEASE_ENCRYPTION_KEYS: key {kid!r} is missing, and values of this"
                    " database may still be sealed with it: keep it in the list until"
                    " `slotease keys rotate` has retired it"
                )
            continue
        try:
            opened = keyring.decrypt(bytes(row["check_value"]), context=_check_context(kid))
        except DecryptionError:
            opened = None
        if opened != crypto.CHECK_PLAINTEXT:
            raise KeyringError(
                f"SLOTEASE_ENCRYPTION_KEYS: key {kid!r} is not the key of that id that sealed"
                " this database's values"
            )
    live = {row["kid"] for row in rows if row["retired_at"] is None}
    known = {row["kid"] for row in rows}
    retired_current = [keyring.current] if keyring.current in known - live else []
    return [kid for kid in keyring.keys if kid not in known] + retired_current


async def _register(db: Database, keyring: Keyring, kids: list[str]) -> None:
    async with db.transaction(SERVICE) as conn:
        for kid in kids:
            check_value = keyring.encrypt(
                crypto.CHECK_PLAINTEXT, context=_check_context(kid), kid=kid
            )
            await repo.register_key(conn, kid, check_value)
        await repo.reinstate_key(conn, keyring.current)


async def open_keyring(settings: Settings, db: Database, *, as_service: bool) -> Keyring:
    """Check this process's keyring against the database, register its new keys, and install
    it. `db` is the process's own pool; the API's cannot register (only the worker's login
    role may), so a new key is registered through a short-lived worker connection."""
    keyring = settings.resolved_keyring()
    unseen = await _keys_to_register(db, keyring, as_service=as_service)
    if unseen:
        registrar = db if as_service else worker_database(settings, max_size=1)
        if registrar is not db:
            await registrar.open()
        try:
            await _register(registrar, keyring, unseen)
            # Another process may have registered the same id with another key meanwhile.
            await _keys_to_register(registrar, keyring, as_service=True)
        finally:
            if registrar is not db:
                await registrar.close()
    crypto.install(keyring)
    return keyring


@dataclass
class Rotation:
    """What a rotation did: values re-sealed per column, and the keys it retired."""

    resealed: dict[str, int] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"{name}: {count} re-sealed" for name, count in self.resealed.items()]
        if self.remaining:
            lines.append(
                "still under older keys (rows busy during the run; run it again): "
                + ", ".join(self.remaining)
            )
        elif self.retired:
            lines.append("retired: " + ", ".join(self.retired))
        return lines


async def rotate(
    db: Database, keyring: Keyring, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Rotation:
    """Re-seal every value not under the current key, in short transactions of `batch_size`
    rows each, so writers wait at most one batch for a row. Rows a writer holds are skipped
    and found by the next pass; the passes end when one finds nothing left. Running it again
    after an interruption carries on where it stopped, since only stale values are read.
    When nothing stale is left anywhere, the older keys are retired: they may then leave
    SLOTEASE_ENCRYPTION_KEYS."""
    report = Rotation()
    prefix = keyring.current_prefix
    for column in repo.SEALED_COLUMNS:
        name = column.name
        report.resealed[name] = 0
        for _ in range(MAX_PASSES):
            count = await _pass(db, keyring, column, prefix, batch_size)
            if count == 0:
                break
            report.resealed[name] += count
    async with db.transaction(SERVICE) as conn:
        for column in repo.SEALED_COLUMNS:
            if await repo.any_stale(conn, column, prefix):
                report.remaining.append(column.name)
        if not report.remaining:
            report.retired = await repo.retire_keys_except(conn, keyring.current)
    return report


async def _pass(
    db: Database, keyring: Keyring, column: repo.SealedColumn, prefix: bytes, batch_size: int
) -> int:
    """One walk over the column in primary key order; the number of values re-sealed."""
    after: Row | None = None
    resealed = 0
    while True:
        async with db.transaction(SERVICE) as conn:
            await repo.mark_rotating(conn)
            rows = await repo.stale_batch(conn, column, prefix, after, batch_size)
            if not rows:
                return resealed
            for row in rows:
                context = crypto.field_context(column.field, row["row_id"])
                plaintext = keyring.decrypt(bytes(row["value"]), context=context)
                row["sealed"] = keyring.encrypt(plaintext, context=context)
            await repo.reseal(conn, column, rows)
        resealed += len(rows)
        after = {name: rows[-1][name] for name in column.keys}
        log.info("re-sealed %d values of %s", len(rows), column.name)
