"""Retries with exponential backoff and full jitter, so a provider outage does not come back
as a synchronized wave of retries."""

from __future__ import annotations

import random

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.jobs import Job

from slotease.jobs.queues import priority_of


class PermanentJobError(Exception):
    """A failure that no retry can fix (a refused address, a missing row)."""


class JitteredBackoff(BaseRetryStrategy):
    def __init__(
        self, *, max_attempts: int, base_seconds: float = 2.0, cap_seconds: float = 3600.0
    ) -> None:
        self.max_attempts = max_attempts
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds

    def delay(self, attempts: int) -> float:
        """Seconds before the next run, after `attempts` failed runs (0 after the first)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2**attempts)
        return random.uniform(ceiling / 2, ceiling)

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, PermanentJobError) or job.attempts + 1 >= self.max_attempts:
            return None
        return RetryDecision(
            retry_in={"seconds": max(1, round(self.delay(job.attempts)))},
            priority=priority_of(job.queue, retry=True),
        )

    def is_last_attempt(self, job: Job) -> bool:
        return job.attempts + 1 >= self.max_attempts


# The policy of every task that retries; its attempt budget comes from
# SLOTEASE_JOB_MAX_ATTEMPTS when a worker starts.
RETRY = JitteredBackoff(max_attempts=8)
