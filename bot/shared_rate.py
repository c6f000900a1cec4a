"""One requests-per-minute ceiling for the video API, shared by every bot process on one
database (OPENAI_REQUESTS_PER_MINUTE is a promise to the API provider about the bot as a whole,
not about each process).

Each grant is a row in the store's request log (bot/store/ratelog.py), taken in a store
transaction, which is serialised across processes; a refusal says how long until the oldest
start leaves the window, and the waiter sleeps that long and asks again. On SQLite the bot is one
process per data folder, so it keeps the in-process limiter (bot/api/ratelimit.py) and no
request pays a database trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.api.ratelimit import MinuteRateLimiter
from bot.store import Store

log = logging.getLogger(__name__)

# After a database error, how long requests go at this process's own pace before the database is
# asked again (at most a window): a database that is down is not asked, and waited for, once
# per request.
RETRY_AFTER = 5.0
# How long a take may wait for the database (its write lock, a connection) before it counts as a
# failure: a database that hangs must not hold every request to the video API with it.
DB_TIMEOUT = 5.0


class SharedMinuteLimiter:
    """At most `per_minute` request starts in any `window` seconds across every process whose
    limiter names the same `bucket` (the video server's backend key, never its address or key,
    so bots on different servers never share a ceiling). A RequestLimiter."""

    def __init__(
        self,
        store: Store,
        bucket: str,
        per_minute: int,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        db_timeout: float = DB_TIMEOUT,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.bucket = bucket
        self.per_minute = per_minute
        # The window is a parameter only so tests can check the rule in a fraction of a second.
        self.window = window
        # Wall-clock time, not monotonic: the starts are compared across processes (and hosts,
        # whose clocks NTP keeps within milliseconds; a window is a minute).
        self._clock = clock
        self._sleep = sleep
        self._store = store
        self._db_timeout = db_timeout
        # This process's waiters take slots in arrival order, and only the first of them asks
        # the database (once per wait), however many are queued.
        self._lock = asyncio.Lock()
        # When the database fails, requests go at this process's own pace instead: never stall
        # every job on a database hiccup. Until it answers again several processes may together
        # exceed the ceiling (each keeps to it alone); a server that then answers 429 is retried
        # after the wait it asks for, like any other.
        self._local = MinuteRateLimiter(per_minute, window=window, clock=clock, sleep=sleep)
        self._failing = False
        self._retry_at = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                if self._failing and self._clock() < self._retry_at:
                    await self._local.acquire()
                    return
                try:
                    async with asyncio.timeout(self._db_timeout):
                        wait = await self._store.take_request_slot(
                            self.bucket,
                            per_minute=self.per_minute,
                            window=self.window,
                            clock=self._clock,
                        )
                except Exception:  # TimeoutError included
                    # Logged once per outage, not once per request.
                    if not self._failing:
                        log.warning(
                            "the shared request log is unavailable; keeping to %d requests per "
                            "minute in this process alone until it answers",
                            self.per_minute,
                            exc_info=True,
                        )
                        self._failing = True
                    self._retry_at = self._clock() + min(RETRY_AFTER, self.window)
                    await self._local.acquire()
                    return
                if self._failing:
                    log.info("the shared request log answers again")
                    self._failing = False
                if wait <= 0:
                    return
                await self._sleep(wait)
