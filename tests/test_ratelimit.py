"""The shared requests-per-minute limit."""

from __future__ import annotations

import asyncio
import time

from bot.api.ratelimit import MinuteRateLimiter
from tests.clock import Clock


async def test_no_window_ever_holds_more_than_the_limit() -> None:
    limiter = MinuteRateLimiter(3, window=0.2)
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(10)))
    starts.sort()
    assert len(starts) == 10
    for i, t in enumerate(starts):
        in_window = [s for s in starts[i:] if s - t < 0.2 - 1e-3]
        assert len(in_window) <= 3
    # It waited rather than refusing: ten starts at three per 0.2 s need at least three windows.
    assert starts[-1] - starts[0] >= 0.6 - 0.02


async def test_available_counts_free_slots() -> None:
    limiter = MinuteRateLimiter(2, window=0.1)
    assert limiter.available() == 2
    await limiter.acquire()
    assert limiter.available() == 1
    await asyncio.sleep(0.12)
    assert limiter.available() == 2


async def test_a_waiter_starts_when_the_oldest_start_leaves_the_window() -> None:
    clock = Clock(500.0)
    limiter = MinuteRateLimiter(2, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.now += 10.0
    await limiter.acquire()
    await limiter.acquire()
    # The start at 500 left at 560; the one at 510 holds the next until 570.
    assert clock.now == 560.0
    await limiter.acquire()
    assert clock.now == 570.0
