from __future__ import annotations

import psycopg
import pytest

from tests.cli.conftest import RunCli
from tests.conftest import TEST_JWT_SECRET


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        ([], ["serve", "migrate", "demo"]),
        (["serve"], ["--host", "--port", "--workers", "--demo"]),
        (["migrate"], ["--sql"]),
        (["demo"], ["demo data", "idempotent"]),
    ],
)
def test_help_describes_the_command_and_its_options(
    run_cli: RunCli, args: list[str], mentions: list[str]
) -> None:
    result = run_cli(*args, "--help")
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    for mention in mentions:
        assert mention in result.stdout


@pytest.mark.parametrize("command", ["migrate", "demo"])
@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"SLOTEASE_RATE_LIMIT_USER": "lots"}, "SLOTEASE_RATE_LIMIT_USER"),
        ({"SLOTEASE_ENV": "production"}, "SLOTEASE_JWT_SECRET"),
        ({"SLOTEASE_JWT_SECRET": "short"}, "SLOTEASE_JWT_SECRET"),
        ({"SLOTEASE_LOG_LEVEL": "LOUD"}, "SLOTEASE_LOG_LEVEL"),
        ({"SLOTEASE_POOL_MAX_SIZE": "zero"}, "SLOTEASE_POOL_MAX_SIZE"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_setting(
    run_cli: RunCli, command: str, env: dict[str, str], setting: str
) -> None:
    result = run_cli(command, env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", **env})
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {setting}: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_migrate_sql_prints_the_whole_schema_script(run_cli: RunCli) -> None:
    result = run_cli("migrate", "--sql")
    assert result.exit_code == 0, result.output
    assert "create table public.appointments" in result.stdout
    assert "enable row level security" in result.stdout
    assert "alembic_version" in result.stdout


def test_migrate_sql_from_a_revision_prints_only_the_later_ones(run_cli: RunCli) -> None:
    result = run_cli("migrate", "--sql", "--from", "0023")
    assert result.exit_code == 0, result.output
    assert "create trigger slotease_user_profile" in result.stdout
    assert "create table public.appointments" not in result.stdout
    assert "UPDATE alembic_version SET version_num='0024' WHERE" in result.stdout
    unknown = run_cli("migrate", "--sql", "--from", "9999")
    assert unknown.exit_code == 2
    assert "unknown revision" in unknown.output


def test_migrate_on_a_migrated_database_is_a_no_op(
    run_cli: RunCli, owner_conninfo: str, owner: psycopg.Connection[tuple[object, ...]]
) -> None:
    before = owner.execute("select version_num from public.alembic_version").fetchall()
    result = run_cli(
        "migrate", env={"DATABASE_URL": owner_conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}
    )
    assert result.exit_code == 0, result.output
    assert "latest revision" in result.stdout
    assert owner.execute("select version_num from public.alembic_version").fetchall() == before
    assert len(before) == 1


def test_demo_refuses_to_seed_in_production(run_cli: RunCli, owner_conninfo: str) -> None:
    result = run_cli(
        "demo",
        env={
            "DATABASE_URL": owner_conninfo,
            "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET,
            "SLOTEASE_ENV": "production",
        },
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("configuration error: SLOTEASE_ENV: ")
    with psycopg.connect(owner_conninfo) as conn:
        row = conn.execute("select count(*) from public.organizations").fetchone()
    assert row == (0,)


def test_serve_configures_the_websocket_heartbeats(
    run_cli: RunCli, owner_conninfo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uvicorn import Config

    from slotease import cli

    configs: list[Config] = []

    def run(server: cli._Server, sockets: object = None) -> None:
        server.started = True
        configs.append(server.config)

    monkeypatch.setattr(cli._Server, "run", run)
    # One process: the single-process server is the one this test stands in for.
    monkeypatch.setattr(cli, "usable_cores", lambda: 1)
    env = {"DATABASE_URL": owner_conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}
    # serve hands SLOTEASE_RUN_WORKER to its processes; naming it here restores it afterwards.
    env["SLOTEASE_RUN_WORKER"] = "false"
    assert run_cli("serve", env=env).exit_code == 0
    assert (configs[0].ws_ping_interval, configs[0].ws_ping_timeout) == (20.0, 20.0)
    # The realtime fan-out's protocol, and no compression, which would frame per connection.
    assert configs[0].ws == "slotease.realtime.transport:FanoutProtocol"
    assert configs[0].ws_per_message_deflate is False
    env |= {"SLOTEASE_WS_PING_INTERVAL": "5", "SLOTEASE_WS_PING_TIMEOUT": "7.5"}
    assert run_cli("serve", env=env).exit_code == 0
    assert (configs[1].ws_ping_interval, configs[1].ws_ping_timeout) == (5.0, 7.5)


def test_serve_runs_one_process_per_usable_core_unless_told(
    run_cli: RunCli, owner_conninfo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uvicorn import Config, supervisors

    from slotease import cli

    supervised: list[Config] = []

    class Supervisor:
        def __init__(self, config: Config, sockets: object) -> None:
            supervised.append(config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(supervisors, "Multiprocess", Supervisor)
    monkeypatch.setattr(cli, "usable_cores", lambda: 3)
    env = {
        "DATABASE_URL": owner_conninfo,
        "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET,
        "SLOTEASE_RUN_WORKER": "false",
    }
    assert run_cli("serve", "--port", "0", env=env).exit_code == 0
    assert run_cli("serve", "--port", "0", "--workers", "2", env=env).exit_code == 0
    assert [config.workers for config in supervised] == [3, 2]
