"""The local queue: jobs reserved while the concurrency cap (`QUOTA_MAX_CONCURRENT_JOBS`) was
reached wait in 'queued_local', oldest first, and are sent as slots free up (each tracker round
and each wake looks)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.store import Job, Store

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
        """Send queued jobs, oldest first, while the concurrency cap leaves room. Each is taken
        in one transaction that counts the slots in use across every process, so processes
        sharing a database never fill one slot twice; the job becomes this process's."""
        if self.max_concurrent is None:
            return
        while True:
            try:
                job = await self.store.take_queued(self.max_concurrent)
            except Exception:
                log.exception("could not take a job from the queue")
                return
            if job is None:
                return
            try:
                await self.send(job)
            except Exception:
                # One job's trouble never keeps the queue from moving; the rounds find it in
                # 'creating' and carry on with it.
                log.exception("job %s: sending it failed", job.id)
