"""Operations on jobs: failed ones listed and retried, stalled ones recovered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from procrastinate import App, utils

from slotease.config import Settings

# Beats a worker may miss before it is taken for dead.
MISSED_BEATS = 3


def stalled_after_seconds(settings: Settings) -> float:
    return MISSED_BEATS * settings.worker_heartbeat_seconds


@dataclass(frozen=True)
class FailedJob:
    id: int
    task: str
    queue: str
    attempts: int
    args: dict[str, Any]


async def failed_jobs(app: App) -> list[FailedJob]:
    jobs = await app.job_manager.list_jobs_async(status="failed")
    return [
        FailedJob(
            id=j.id or 0, task=j.task_name, queue=j.queue, attempts=j.attempts, args=j.task_kwargs
        )
        for j in jobs
    ]


async def retry_failed(app: App, job_id: int) -> None:
    """Queue a failed job again, to run now. Raises LookupError for any other job."""
    jobs = list(await app.job_manager.list_jobs_async(id=job_id, status="failed"))
    if not jobs:
        raise LookupError(f"job {job_id} is not a failed job")
    await app.job_manager.retry_job_by_id_async(job_id=job_id, retry_at=utils.utcnow())


async def recover_stalled_jobs(app: App, seconds_since_heartbeat: float) -> list[int]:
    stalled = list(
        await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat)
    )
    for job in stalled:
        await app.job_manager.retry_job(job)
    return [job.id for job in stalled if job.id is not None]
