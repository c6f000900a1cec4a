"""The Store's delivery writes: claiming a finished job's delivery, releasing a failed attempt,
and finishing it, which settles a success's hold into spending (at the cost its service
reported, where it did) or refunds a failure, in the same transaction."""

from __future__ import annotations

import logging

from bot.store import deliveries, jobs, ledger
from bot.store.base import StoreBase
from bot.store.db import Conn
from bot.store.keptlimits import headroom
from bot.store.records import Job

log = logging.getLogger(__name__)


class DeliveryWrites(StoreBase):
    """Delivering finished jobs, and settling their money as they are delivered."""

    async def claim_delivery(self, job_id: int, now: float | None = None) -> bool:
        """pending -> claimed for a finished job; True for exactly one of any concurrent callers.
        False (nothing changed) if the job is still active or its delivery is claimed or done."""
        async with self.transaction() as conn:
            return await deliveries.claim_delivery(
                conn, job_id, self.clock() if now is None else now
            )

    async def release_claim(
        self, job_id: int, retry_at: float | None = None, *, failed: bool = True
    ) -> bool:
        """claimed -> pending after a failed attempt (attempts + 1 unless `failed` is False: an
        attempt cut short by a shutdown), not to be tried again before `retry_at` (None: at
        once); whether it was claimed."""
        async with self.transaction() as conn:
            return await deliveries.release_claim(
                conn, job_id, self.clock(), retry_at, failed=failed
            )

    async def finish_delivery(
        self, job_id: int, message_id: int | None, now: float | None = None
    ) -> Job | None:
        """claimed -> done, clearing the interaction token, and in the same transaction settle a
        success's hold into spending (or refund a failure's, should one remain). None if the
        delivery was already done (nothing is charged again)."""
        async with self.transaction() as conn:
            now = self.clock() if now is None else now
            done = await deliveries.finish_delivery(conn, job_id, message_id, now)
            job = done or await jobs.require(conn, job_id)
            if job.state == "succeeded":
                await ledger.settle(conn, job, now)
                if done is not None and job.reported_cost_micros is not None:
                    # Only on the delivery that settles it: a repeat changes nothing.
                    done = await self._settle_at_reported(conn, job, job.reported_cost_micros, now)
            else:
                await ledger.refund(conn, job, now)
            return done

    async def _settle_at_reported(self, conn: Conn, job: Job, reported: int, now: float) -> Job:
        room = await headroom(conn, job)
        charged, uncharged = await ledger.adjust(conn, job, reported, room, now)
        await jobs.record_charge(conn, job.id, charged, uncharged, now)
        if uncharged:
            log.warning(
                "job %s: the service reported %s micro-dollars; %s over the member's limits "
                "was not charged",
                job.id,
                reported,
                uncharged,
            )
        return await jobs.require(conn, job.id)
