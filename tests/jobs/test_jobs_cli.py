"""`slotease jobs failed|retry` against the module's database."""

from __future__ import annotations

import json

from tests.cli.conftest import RunCli
from tests.conftest import TEST_JWT_SECRET
from tests.factories import Owner
from tests.notifications.support import jobs

ARGS = {"ids": ["00000000-0000-0000-0000-000000000001"]}


def _job(owner: Owner, status: str) -> int:
    row = owner.execute(
        "select app.enqueue_job('notifications', 'notifications.deliver', %s::jsonb)",
        (json.dumps(ARGS),),
    ).fetchone()
    assert row is not None
    owner.execute(
        "update public.procrastinate_jobs set status = %s, attempts = 3 where id = %s",
        (status, row[0]),
    )
    return int(row[0])


def test_a_failed_job_is_listed_then_queued_again(
    run_cli: RunCli, owner: Owner, owner_conninfo: str
) -> None:
    owner.execute("delete from public.procrastinate_jobs")
    done, failed = _job(owner, "succeeded"), _job(owner, "failed")
    env = {"DATABASE_URL": owner_conninfo, "SLOTEASE_JWT_SECRET": TEST_JWT_SECRET}

    listed = run_cli("jobs", "failed", env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        f"{failed}\tnotifications.deliver\tnotifications\t3\t{json.dumps(ARGS)}"
    ]

    retried = run_cli("jobs", "retry", str(failed), env=env)
    assert retried.exit_code == 0, retried.output
    assert f"job {failed} queued again" in retried.stdout
    assert {j[0]: j[2] for j in jobs(owner)} == {done: "succeeded", failed: "todo"}
    assert run_cli("jobs", "failed", env=env).stdout == ""

    # Only a failed job may be retried: a finished one is refused and left alone.
    refused = run_cli("jobs", "retry", str(done), env=env)
    assert refused.exit_code == 1
    assert f"job {done} is not a failed job" in refused.stderr
    assert {j[0]: j[2] for j in jobs(owner)} == {done: "succeeded", failed: "todo"}
