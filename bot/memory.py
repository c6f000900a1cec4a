"""Giving memory the bot has freed back to the system.

Each tracker round reads every active job and its video, builds messages and parses pages of
JSON, then frees it all; a burst of commands does the same many times at once. glibc's malloc
keeps most freed pages (it only trims the top of its heap, and raises that threshold after large
frees), so the process's RSS follows its worst moment instead of what it holds. `malloc_trim(0)`
returns every free page; it takes about a millisecond, so running it in a thread at most every
`interval` seconds costs nothing noticeable. Elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import time
from collections.abc import Callable

DEFAULT_INTERVAL = 10.0


def _glibc_trim() -> Callable[[], object] | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> object:
        return trim(0)

    return release


class MemoryReleaser:
    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self._trim = _glibc_trim()
        self._last = -float("inf")
        self.releases = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    async def release(self) -> bool:
        """Return free pages to the system unless that was done less than `interval` ago;
        whether it ran."""
        if self._trim is None or self.clock() - self._last < self.interval:
            return False
        self._last = self.clock()
        await asyncio.to_thread(self._trim)
        self.releases += 1
        return True
