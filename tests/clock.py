"""A clock a test moves by hand, for code that takes `clock=` (and `sleep=`): time passes only
when the test says so, so no test waits on the real one."""

from __future__ import annotations

import time


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """A sleep that moves the clock instead of waiting."""
        self.now += seconds
