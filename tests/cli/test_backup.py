"""`slotease db backup|restore` on the server under test (the embedded one in `make test`'s
second run, whose own pg_dump is used): a round trip keeps every row, and a restore refuses a
database that is not empty, a damaged dump, a schema newer than the code and a dump from a newer
server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from slotease.migrations import runner
from slotease.ops.backup import DUMP, MANIFEST
from tests.cli.conftest import RunCli
from tests.clusters.pgcluster import table_fingerprints
from tests.conftest import TEST_JWT_SECRET, clone_database, drop_database
from tests.factories import Owner, make_organization, make_service, make_user


def _env(conninfo: str) -> dict[str, str | None]:
    return {"DATABASE_URL": conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}


@pytest.fixture
def empty_conninfo(server_conninfo: str) -> Iterator[str]:
    name = clone_database(server_conninfo, "template0")
    yield make_conninfo(server_conninfo, dbname=name)
    drop_database(server_conninfo, name)


@pytest.fixture(scope="module")
def backup_dir(
    run_cli: RunCli, owner_conninfo: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    with psycopg.connect(owner_conninfo, autocommit=True) as owner:
        admin = make_user(owner, name="Backed Up")
        make_service(owner, make_organization(owner, admin), name="Kept service")
    directory = tmp_path_factory.mktemp("backups") / "nightly"
    result = run_cli("db", "backup", "--to", str(directory), env=_env(owner_conninfo))
    assert result.exit_code == 0, result.output
    assert f"at revision {runner.head()}" in result.output
    return directory


def _copy(backup_dir: Path, directory: Path) -> Path:
    shutil.copytree(backup_dir, directory)
    return directory


def _user_relations(conninfo: str) -> int:
    return len(table_fingerprints(conninfo))


def test_a_backup_records_its_checksum_revision_and_server(backup_dir: Path, owner: Owner) -> None:
    manifest = json.loads((backup_dir / MANIFEST).read_text())
    row = owner.execute("select current_database(), current_setting('server_version')").fetchone()
    assert row is not None
    assert manifest["database"] == row[0]
    assert manifest["server_version"] == row[1]
    assert manifest["schema_revision"] == runner.head()
    assert manifest["size_bytes"] == (backup_dir / DUMP).stat().st_size
    assert len(manifest["sha256"]) == 64
    assert (backup_dir / DUMP).read_bytes().startswith(b"PGDMP")


def test_a_restore_into_an_empty_database_holds_every_row(
    run_cli: RunCli, backup_dir: Path, owner_conninfo: str, empty_conninfo: str
) -> None:
    result = run_cli("db", "restore", str(backup_dir), env=_env(empty_conninfo))
    assert result.exit_code == 0, result.output
    assert "restored" in result.output
    restored = table_fingerprints(empty_conninfo)
    assert restored == table_fingerprints(owner_conninfo)
    assert restored["public.services"][0] >= 1


def test_a_restore_refuses_a_database_that_is_not_empty(
    run_cli: RunCli, backup_dir: Path, owner_conninfo: str
) -> None:
    before = table_fingerprints(owner_conninfo)
    result = run_cli("db", "restore", str(backup_dir), env=_env(owner_conninfo))
    assert result.exit_code == 1
    assert "is not empty" in result.output
    assert table_fingerprints(owner_conninfo) == before


def test_a_restore_refuses_a_damaged_dump(
    run_cli: RunCli, backup_dir: Path, empty_conninfo: str, tmp_path: Path
) -> None:
    damaged = _copy(backup_dir, tmp_path / "damaged")
    dump = bytearray((backup_dir / DUMP).read_bytes())
    dump[len(dump) // 2] ^= 0xFF
    (damaged / DUMP).write_bytes(bytes(dump))
    result = run_cli("db", "restore", str(damaged), env=_env(empty_conninfo))
    assert result.exit_code == 1
    assert "does not match the checksum" in result.output
    assert _user_relations(empty_conninfo) == 0


@pytest.mark.parametrize(
    ("field", "value", "refusal"),
    [
        ("schema_revision", "9999", "9999 is newer than this SlotEase's"),
        ("server_version", "99.1", "restore it into PostgreSQL 99 or newer"),
        ("format", 2, "is a backup of format 2"),
    ],
)
def test_a_restore_refuses_what_this_code_or_server_cannot_take(
    run_cli: RunCli,
    backup_dir: Path,
    empty_conninfo: str,
    tmp_path: Path,
    field: str,
    value: object,
    refusal: str,
) -> None:
    newer = _copy(backup_dir, tmp_path / "newer")
    manifest = json.loads((backup_dir / MANIFEST).read_text())
    (newer / MANIFEST).write_text(json.dumps(manifest | {field: value}))
    result = run_cli("db", "restore", str(newer), env=_env(empty_conninfo))
    assert result.exit_code == 1
    assert refusal in result.output
    assert _user_relations(empty_conninfo) == 0


def test_a_backup_refuses_a_directory_in_use(
    run_cli: RunCli, backup_dir: Path, owner_conninfo: str
) -> None:
    before = (backup_dir / MANIFEST).read_text()
    result = run_cli("db", "backup", "--to", str(backup_dir), env=_env(owner_conninfo))
    assert result.exit_code == 1
    assert "is not empty" in result.output
    assert (backup_dir / MANIFEST).read_text() == before
