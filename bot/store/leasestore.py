"""The Store's leases: which jobs this process looks after (see leases.py)."""

from __future__ import annotations

from bot.store import leases
from bot.store.base import StoreBase
from bot.store.leases import Claimed
from bot.store.records import Intake, Job


class Leases(StoreBase):
    """Claiming, renewing and handing back this process's jobs (its `worker` id)."""

    async def claim_leases(self) -> Claimed:
        """Renew this process's leases and take the jobs no live process holds. On SQLite (one
        process per data folder) every job is taken at once: whoever held it has stopped."""
        now = self.clock()
        until = self.lease_until(now)
        async with self._db.claiming() as conn:
            claimed = await leases.claim(conn, self.worker, now, until, steal=not self.shared)
        self.held_until = until
        return claimed

    async def claim_orphan_intakes(self) -> list[Intake]:
        """Requests acknowledged by a process that stopped before they became jobs; each is now
        this process's to answer (and then `drop_intake`)."""
        now = self.clock()
        async with self._db.claiming() as conn:
            return await leases.orphan_intakes(
                conn, self.worker, now, self.lease_until(now), steal=not self.shared
            )

    async def release_leases(self) -> int:
        """Hand this process's jobs back (a clean stop), so another process takes them at its
        next claim instead of after the leases expire."""
        async with self._db.single_statements() as conn:
            return await leases.release(conn, self.worker)

    async def take_queued(self, max_concurrent: int) -> Job | None:
        """The oldest job waiting for a slot, now 'creating' and this process's, if a slot is
        free across every process; else None."""
        # Asked on every wake and round: a read first, so an empty queue costs no write lock.
        async with self._read() as conn:
            if not await leases.any_queued(conn):
                return None
        now = self.clock()
        async with self.transaction() as conn:
            return await leases.take_queued(
                conn, self.worker, self.lease_until(now), max_concurrent, now
            )
