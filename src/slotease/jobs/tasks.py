"""How features declare their tasks, and the job machinery's own periodic tasks.

A feature that runs jobs has `<feature>/tasks.py` with a procrastinate `Blueprint` named
`blueprint`; `jobs.worker` gathers the blueprints into the one App. Every task has an explicit
`name`, kept exactly: request code and SQL (app.enqueue_job's allow-list, triggers) enqueue by
that name."""

from __future__ import annotations

from procrastinate import App, Blueprint, JobContext
from procrastinate.exceptions import TaskAlreadyRegistered

from slotease.jobs import runtime
from slotease.jobs.queues import maintenance_task
from slotease.jobs.service import recover_stalled_jobs, stalled_after_seconds

blueprint = Blueprint()


def add_tasks(app: App, feature: Blueprint) -> None:
    """`App.add_tasks_from` under the tasks' own names: its namespace would rename every task
    to `<namespace>:<name>`, which the jobs already enqueued and the SQL do not know."""
    taken = set(app.tasks) & set(feature.tasks)
    if taken:
        raise TaskAlreadyRegistered(f"tasks registered twice: {', '.join(sorted(taken))}")
    for task in feature.tasks.values():
        task.blueprint = app
    app.tasks.update(feature.tasks)
    for periodic in feature.periodic_registry.periodic_tasks.values():
        app.periodic_registry.register_task(
            task=periodic.task,
            cron=periodic.cron,
            periodic_id=periodic.periodic_id,
            configure_kwargs=periodic.configure_kwargs,
        )


@blueprint.periodic(cron="* * * * *")
@blueprint.task(pass_context=True, **maintenance_task("jobs.retry_stalled"))
async def retry_stalled(context: JobContext, timestamp: int) -> None:
    """A worker that died mid-job leaves it `doing`; once its heartbeat is stale the job
    runs again (procrastinate's stalled-job recipe)."""
    await recover_stalled_jobs(context.app, stalled_after_seconds(runtime.current().settings))


@blueprint.periodic(cron="17 3 * * *")
@blueprint.task(pass_context=True, **maintenance_task("jobs.remove_old"))
async def remove_old(context: JobContext, timestamp: int) -> None:
    """Finished jobs are kept a week for `slotease jobs failed` and inspection."""
    await context.app.job_manager.delete_old_jobs(nb_hours=24 * 7, include_failed=False)
