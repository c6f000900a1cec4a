"""The local queue: jobs reserved while the concurrency cap (`QUOTA_MAX_CONCURRENT_JOBS`) was
reached wait in 'queued_local', oldest first, and are sent as slots free up (each tracker round
and each wake looks)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.store import InvalidTransition, Job, Store

log = logging.getLogger(__name__)


class LocalQueue:
    def __init__(
        self,
        store: Store,
        max_concurrent: int | None,
        *,
        send: Callable[[Job], Awaitable[None]],
    ) -> None:
        self.store = store
        # Jobs sent and not yet finished at the service at most; None: no cap, no queue.
        self.max_concurrent = max_concurrent
        # Sends one job (the tracker's `send`, which acts on what the send found out).
        self.send = send

    async def at_capacity(self, job_id: int) -> bool:
        """Whether a new job (`job_id`) must wait in the local queue for a free slot."""
        if self.max_concurrent is None:
            return False
        # A count, not the job list: this runs for every request, bursts included.
        return await self.store.count_working(exclude_id=job_id) >= self.max_concurrent

    async def start_queued(self) -> None:
        """Send queued jobs, oldest first, while the concurrency cap leaves room."""
        if self.max_concurrent is None:
            return
        active = await self.store.active_jobs()
        working = sum(1 for j in active if j.state in ("creating", "running"))
        for job in (j for j in active if j.state == "queued_local"):
            if working >= self.max_concurrent:
                break
            try:
                moved = await self.store.set_state(job.id, "creating")
            except InvalidTransition:
                moved = False
            except Exception:
                log.exception("job %s: could not be taken from the queue", job.id)
                continue
            if not moved:
                continue  # started or failed meanwhile by another path
            working += 1
            try:
                fresh = await self.store.get_job(job.id)
                if fresh is not None:
                    await self.send(fresh)
            except Exception:
                # One job's trouble never keeps the queue from moving; the rounds find it in
                # 'creating' and carry on with it.
                log.exception("job %s: sending it failed", job.id)
