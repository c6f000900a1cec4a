"""The fake's clock and Discord snowflakes made from it.

Discord's ids carry their creation time (milliseconds since 2015-01-01 in the top 42 bits), and
Discord's interaction deadlines (3 s to answer, 15 min of token life) count from the
interaction's id. The fake makes every id from one `FakeClock`, so moving the clock forward is
exactly "time passed" for every deadline the fake enforces, without sleeping.
"""

from __future__ import annotations

import datetime as dt
import time

DISCORD_EPOCH_MS = 1_420_070_400_000


class FakeClock:
    """Seconds since the Unix epoch: real time flowing from `start`, plus whatever was advanced.

    With `frozen=True` real time does not flow at all and only `advance` moves the clock.
    """

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._start = time.time() if start is None else start
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self.frozen = frozen

    def now(self) -> float:
        flowing = 0.0 if self.frozen else time.monotonic() - self._mono0
        return self._start + flowing + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC)


def iso(t: float) -> str:
    """Discord's timestamp format: `2024-05-01T12:00:00.123000+00:00`."""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="microseconds")


def snowflake_time(snowflake: int) -> float:
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000.0


class Snowflakes:
    """Strictly increasing snowflakes whose timestamp is the clock's `now`."""

    def __init__(self, clock: FakeClock, *, worker: int = 1, process: int = 0) -> None:
        self.clock = clock
        self._worker = worker & 0x1F
        self._process = process & 0x1F
        self._last = 0

    def next(self) -> int:
        ms = int(self.clock.now() * 1000) - DISCORD_EPOCH_MS
        candidate = (ms << 22) | (self._worker << 17) | (self._process << 12)
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate
