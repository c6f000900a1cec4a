"""A requests-per-minute limit shared by every call the process makes to the video API."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class RequestLimiter(Protocol):
    """What the client's transport waits on before each request to the video API: this
    process's own log (MinuteRateLimiter) or one every process shares through the database
    (bot/shared_rate.py)."""

    async def acquire(self) -> None:
        """Return when one more request may start."""


class MinuteRateLimiter:
    """At most `per_minute` request starts in any 60-second window.

    A sliding log rather than a token bucket: a bucket lets a full burst plus a minute's refill
    through in the first minute, and the owner's limit is a promise to the API provider.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        # The window is a parameter only so tests can check the rule in a fraction of a second.
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._starts: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    def _prune(self, now: float) -> None:
        while self._starts and now - self._starts[0] >= self.window:
            self._starts.popleft()

    def available(self) -> int:
        """Requests that could start now without waiting."""
        self._prune(self._clock())
        return self.per_minute - len(self._starts)

    async def acquire(self) -> None:
        # The lock makes waiters take slots in arrival order.
        async with self._lock:
            while True:
                now = self._clock()
                self._prune(now)
                if len(self._starts) < self.per_minute:
                    self._starts.append(now)
                    return
                await self._sleep(self._starts[0] + self.window - now)
