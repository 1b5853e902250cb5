"""What happens with nobody pressing anything: silence reminders and re-routes, the waiting list,
retention, the admins' Monday digest. Each job reads its work from the database, so a restart loses none of it; the periods
only say how often to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.runtime import Services
from conversations.services import digest, handoffs, parental, privacy, reach, waiting_list

log = logging.getLogger(__name__)

# Retention is about months, not minutes.
RETENTION_EVERY = timedelta(hours=1)
# How long stopping waits for a job in the middle of its transaction.
STOP_PATIENCE = 10.0


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[datetime], Awaitable[object]]


class Timers:
    def __init__(
        self,
        services: Services,
        on_outbox: Callable[[], None],
        extra: tuple[Job, ...] = (),
    ) -> None:
        policy = services.policy
        unit_of_work = services.unit_of_work

        async def silence(now: datetime) -> int:
            return await handoffs.chase_silence(unit_of_work, now, policy)

        async def parents(now: datetime) -> int:
            return await parental.chase(unit_of_work, now, policy)

        async def waiting(now: datetime) -> int:
            return await waiting_list.retry_waiting(unit_of_work, now, policy)

        async def retention(now: datetime) -> privacy.Purged:
            return await privacy.purge(unit_of_work, now, policy)

        async def nudge(now: datetime) -> int:
            return await reach.nudge(unit_of_work, now, policy)

        tick = timedelta(seconds=services.settings.timer_seconds)
        # Looked at every tick, computed once a week: due from Monday 08:00 (Paris).
        weekly = (
            (Job("weekly digest", tick, digest.WeeklyDigest(unit_of_work, policy)),)
            if services.settings.weekly_digest
            else ()
        )
        # NUDGE_AFTER_HOURS=0: no job at all, rather than one that finds nothing to do.
        nudges = (Job("nudge", tick, nudge),) if policy.nudge_after is not None else ()
        self.jobs = (
            Job("silence", tick, silence),
            Job("parental links", tick, parents),
            Job("waiting list", waiting_list.EVERY, waiting),
            Job("retention", RETENTION_EVERY, retention),
            *weekly,
            *nudges,
            *extra,
        )
        self._clock = services.clock
        self._on_outbox = on_outbox
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if not self._tasks:
            self._stopping.clear()
            self._tasks = [
                asyncio.create_task(self._every(job), name=f"timer-{job.name}") for job in self.jobs
            ]

    async def stop(self, patience: float = STOP_PATIENCE) -> None:
        """Let a job that is running finish its transaction (cancelled mid-query, a database
        driver's thread would answer a loop that is gone), then stop."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _done, late = await asyncio.wait(tasks, timeout=patience)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every(self, job: Job) -> None:
        """Run at start, then once per period; one failure waits for the next period."""
        while not self._stopping.is_set():
            try:
                await job.run(self._clock())
                # Whatever the job queued (reminders, re-routes, erasure notices) goes out now.
                self._on_outbox()
            except Exception:
                log.exception("timer %s failed", job.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), job.every.total_seconds())
