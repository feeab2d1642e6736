"""Every feature's tasks gathered into the one App under the names the SQL enqueues them by,
and jobs/ kept below the features."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import slotease
from slotease.jobs.worker import jobs
from tests.factories import Owner

JOBS_DIR = Path(slotease.__file__).parent / "jobs"
# The modules of slotease below the features, which jobs/ may import.
LOW_LEVEL = {"config", "db", "jobs", "kit"}


def test_the_app_runs_every_task_the_request_path_may_enqueue(owner: Owner) -> None:
    row = owner.execute(
        "select prosrc from pg_proc where oid = 'app.enqueue_job_checked'::regproc"
    ).fetchone()
    assert row is not None
    allowed = set(re.findall(r"when '([a-z_]+\.[a-z_]+)' then", row[0]))
    assert len(allowed) == 6
    assert allowed <= set(jobs.tasks)


def test_periodic_tasks_keep_their_names_and_schedules() -> None:
    schedules = {p.task.name: p.cron for p in jobs.periodic_registry.periodic_tasks.values()}
    assert schedules == {
        "jobs.retry_stalled": "* * * * *",
        "jobs.remove_old": "17 3 * * *",
        "ops.refresh_analytics": "5 * * * *",
        "ops.maintain_partitions": "30 3 * * *",
        "ops.apply_text_retention": "45 3 * * *",
        "ops.analyze_hot_tables": "15 */6 * * *",
        "ops.purge_expired_keys": "41 * * * *",
        "waitlist.expire_offers": "* * * * *",
        "queues.expire_called_tickets": "* * * * *",
    }
    assert all(jobs.tasks[name].queue == "maintenance" for name in schedules)


def _slotease_imports(path: Path) -> set[str]:
    """The top-level packages of slotease that the module at `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        )  # fmt: skip
        found |= {n.split(".")[1] for n in names if n.startswith("slotease.")}
    return found


def test_only_the_worker_entry_point_of_jobs_imports_features() -> None:
    imports = {p.stem: _slotease_imports(p) for p in JOBS_DIR.glob("*.py")}
    assert imports["worker"] - LOW_LEVEL >= {"notifications", "webhooks", "ops"}
    assert {stem: found - LOW_LEVEL for stem, found in imports.items() if stem != "worker"} == {
        stem: set() for stem in imports if stem != "worker"
    }
