"""The Store's record of how long finished jobs took (timings.py), which bot/durations.py turns
into expected durations."""

from __future__ import annotations

from bot.store import timings
from bot.store.base import StoreBase


class Timings(StoreBase):
    """Samples of how long jobs took, the newest few per backend, model, size and length."""

    async def record_duration(
        self,
        *,
        backend: str,
        model: str,
        size: str,
        seconds: str,
        took: float,
        job_id: int,
        keep: int,
    ) -> bool:
        """Keep one finished job's duration (seconds), and only the newest `keep` of its kind;
        whether it was new (a job is recorded once)."""
        if took < 0 or keep < 1:
            raise ValueError("a duration is not negative, and at least one is kept")
        async with self.transaction() as conn:
            return await timings.record(
                conn,
                backend=backend,
                model=model,
                size=size,
                seconds=seconds,
                took=took,
                job_id=job_id,
                at=self.clock(),
                keep=keep,
            )

    async def recent_durations(
        self, *, backend: str, model: str, size: str, seconds: str, limit: int
    ) -> list[float]:
        """The newest `limit` durations of a kind, newest first."""
        async with self._read() as conn:
            return await timings.recent(
                conn, backend=backend, model=model, size=size, seconds=seconds, limit=limit
            )
