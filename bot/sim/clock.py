"""The simulator's clock for tests: job status is computed from the clock on every read, so a
test moves time by hand instead of waiting for it."""

from __future__ import annotations

import time


class SimClock:
    """A clock tests move by hand: pass it (or its `now`) as the server's clock.

    It starts at the real time by default, so timestamps stay comparable with a client's own
    clock (a client looking for a job it created "just now" compares them).
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._now += seconds
