"""A per-member wait between repeated requests of one kind (e.g. "show again")."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

# Past this many remembered members, the ones whose wait is over are forgotten.
_PRUNE_AT = 1024


class Cooldown:
    """`take(key)` admits `key` at most once per `seconds`; the rest are told how long to wait.

    Kept in memory: a restart forgets it, which costs at most one early request per member."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last: dict[Hashable, float] = {}

    def take(self, key: Hashable) -> float:
        """0 when `key` may go now (and is counted from now), else the seconds left to wait."""
        if self.seconds <= 0:
            return 0.0
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            return self.seconds - (now - last)
        if len(self._last) >= _PRUNE_AT:
            self._last = {k: t for k, t in self._last.items() if now - t < self.seconds}
        self._last[key] = now
        return 0.0
