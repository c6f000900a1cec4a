"""The Store's reads of jobs and money: what the tracker, the queue, `/videos`, `/quota` and the
ledger's checks ask. Each read is its own snapshot, taken when no transaction of this process is
open."""

from __future__ import annotations

from bot.store import deliveries, jobs, ledger
from bot.store.base import StoreBase
from bot.store.ledger import ANY_GUILD
from bot.store.records import Account, Job, JobBalance, LedgerEntry


class Reads(StoreBase):
    """Reads of jobs and money."""

    async def get_job(self, job_id: int) -> Job | None:
        async with self._read() as conn:
            return await jobs.get(conn, job_id)

    async def active_jobs(self) -> list[Job]:
        """creating, queued_local and running jobs, oldest first."""
        async with self._read() as conn:
            return await jobs.active(conn)

    async def undelivered_jobs(self) -> list[Job]:
        """Finished jobs whose delivery is pending or claimed, oldest first."""
        async with self._read() as conn:
            return await deliveries.undelivered(conn)

    async def due_deliveries(self, now: float | None = None) -> list[Job]:
        """Pending deliveries whose back-off has passed, oldest first."""
        async with self._read() as conn:
            return await deliveries.due_deliveries(conn, self.clock() if now is None else now)

    async def jobs_with_local_files(self) -> list[Job]:
        """Jobs with a file kept on disk (`set_local_path`), oldest first."""
        async with self._read() as conn:
            return await jobs.with_local_files(conn)

    async def recent_jobs(self, user_id: int, limit: int, offset: int = 0) -> list[Job]:
        """The user's jobs, newest first, `limit` from `offset` (for paging)."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        async with self._read() as conn:
            return await jobs.recent(conn, user_id, limit, offset)

    async def count_jobs(self, user_id: int) -> int:
        async with self._read() as conn:
            return await jobs.count(conn, user_id)

    async def count_active_jobs(self, user_id: int) -> int:
        """The user's creating, queued_local and running jobs."""
        async with self._read() as conn:
            return await jobs.count_active(conn, user_id)

    async def oldest_charge_since(self, user_id: int, since: float) -> float | None:
        """When the user's oldest job still counting against their budget since `since` was
        created (see jobs.oldest_charge_since); None if there is none."""
        async with self._read() as conn:
            return await jobs.oldest_charge_since(conn, user_id, since)

    async def count_working(self, exclude_id: int | None = None) -> int:
        """Jobs being sent or running at the video service, besides `exclude_id`."""
        async with self._read() as conn:
            return await jobs.count_working(conn, exclude_id)

    async def queue_position(self, job_id: int) -> int | None:
        """1-based place among locally queued jobs; None if the job is not queued."""
        async with self._read() as conn:
            return await jobs.queue_position(conn, job_id)

    async def known_video_ids(self, since: float | None = None) -> set[str]:
        """API video ids already owned by a job (optionally of jobs created since `since`)."""
        async with self._read() as conn:
            return await jobs.known_video_ids(conn, since)

    async def last_request_at(self, user_id: int) -> float | None:
        async with self._read() as conn:
            return await jobs.last_request_at(conn, user_id)

    # ------------------------------------------------------------------ ledger

    async def usage(
        self, *, user_id: int | None = None, guild_id: int | None = None, since: float = 0.0
    ) -> int:
        """held + spent of requests made since `since` (None = no filter on that field)."""
        async with self._read() as conn:
            return await ledger.usage(
                conn,
                since=since,
                user_id=user_id,
                guild_id=ANY_GUILD if guild_id is None else guild_id,
            )

    async def top_spenders(
        self, guild_id: int | None, since: float, limit: int = 10
    ) -> list[tuple[int, int]]:
        """(user_id, held + spent) of the biggest users since `since`; guild None = all."""
        async with self._read() as conn:
            return await ledger.top_spenders(
                conn, guild_id=ANY_GUILD if guild_id is None else guild_id, since=since, limit=limit
            )

    async def open_hold(self, job_id: int) -> int:
        async with self._read() as conn:
            return await ledger.open_hold(conn, job_id)

    async def ledger_balances(self) -> dict[Account, int]:
        async with self._read() as conn:
            return await ledger.balances(conn)

    async def ledger_sum_by_job(self) -> dict[int, JobBalance]:
        async with self._read() as conn:
            return await ledger.sum_by_job(conn)

    async def ledger_entries(self, job_id: int | None = None) -> list[LedgerEntry]:
        async with self._read() as conn:
            return await ledger.entries(conn, job_id)
