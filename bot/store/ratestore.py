"""The Store's shared log of requests to the video API (ratelog.py), which bot/shared_rate.py
turns into one requests-per-minute ceiling for every bot process on the database."""

from __future__ import annotations

from collections.abc import Callable

from bot.store import ratelog
from bot.store.base import StoreBase


class RequestLog(StoreBase):
    """Request starts per video server within the last window, shared by every process."""

    async def take_request_slot(
        self,
        bucket: str,
        *,
        per_minute: int,
        window: float,
        clock: Callable[[], float] | None = None,
    ) -> float:
        """Record one request start in `bucket` now if the last `window` seconds hold fewer than
        `per_minute`, and return 0.0; else how many seconds until one leaves the window.

        `clock` (default: the store's) is read inside the transaction, after the turn is won:
        a time read before it could be a wait for another process's transaction old, and a
        start recorded that early would leave the window that much too soon."""
        if per_minute < 1 or window <= 0:
            raise ValueError("at least one request per window, and a window of some length")
        async with self.transaction() as conn:
            now = (clock or self.clock)()
            return await ratelog.take_slot(conn, bucket, per_minute, window, now)
