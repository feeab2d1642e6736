"""The deployment files agree with the code: every variable they set is a setting SlotEase
reads, the API goes through PgBouncer with the pooler setting, and nothing that needs a session
of its own (the workers, migrations) does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from slotease.config import Settings

ROOT = Path(__file__).resolve().parents[2]
OURS = re.compile(r"^(SLOTEASE_\w+|DATABASE_URL|REDIS_URL)$")


def _setting_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif alias is not None:
            names.add(str(alias))
    return names


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _slotease_services() -> dict[str, dict[str, str]]:
    return {
        name: service["environment"]
        for name, service in _compose()["services"].items()
        if service.get("image") == "slotease:latest"
    }


def test_every_variable_the_deployment_sets_is_a_setting() -> None:
    settings = _setting_names()
    env_file = (ROOT / "deploy/systemd/slotease.env.example").read_text().splitlines()
    from_env_file = {line.split("=", 1)[0] for line in env_file if "=" in line}
    services = _slotease_services()
    from_compose = {name for env in services.values() for name in env}
    # The pgbouncer service's variable is its entrypoint's (deploy/pgbouncer/entrypoint.sh).
    assert {"api", "worker", "migrate"} <= set(services)
    ours = {name for name in from_env_file | from_compose if OURS.match(name)}
    assert ours - settings == set()
    assert {"DATABASE_URL", "SLOTEASE_APP_DATABASE_URL", "SLOTEASE_WORKER_DATABASE_URL"} <= ours


def test_only_the_api_role_goes_through_pgbouncer() -> None:
    for name, env in _slotease_services().items():
        assert "@pgbouncer:" in env["SLOTEASE_APP_DATABASE_URL"], name
        assert env["SLOTEASE_DB_POOLER"] == "transaction", name
        assert "@primary:" in env["SLOTEASE_WORKER_DATABASE_URL"], name
        assert "@primary:" in env["DATABASE_URL"], name
    env_file = (ROOT / "deploy/systemd/slotease.env.example").read_text()
    assert re.search(r"^SLOTEASE_APP_DATABASE_URL=.*:6432/", env_file, re.M)
    assert not re.search(r"^SLOTEASE_WORKER_DATABASE_URL=.*:6432/", env_file, re.M)


def test_the_pgbouncer_service_runs_in_transaction_mode_before_the_primary() -> None:
    ini = (ROOT / "deploy/pgbouncer/pgbouncer.ini").read_text()
    assert re.search(r"^pool_mode = transaction$", ini, re.M)
    assert re.search(r"^slotease = host=primary port=5432 dbname=slotease$", ini, re.M)
    api = _compose()["services"]["api"]
    assert "--no-worker" in api["command"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
