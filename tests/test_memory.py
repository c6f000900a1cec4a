"""Handing freed memory back to the system (bot/memory.py), with real allocations."""

from __future__ import annotations

import pytest

from bot.memory import MemoryReleaser
from tests.clock import Clock

linux_glibc = pytest.mark.skipif(
    not MemoryReleaser().available, reason="malloc_trim is glibc's (Linux)"
)


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@linux_glibc
async def test_pages_freed_below_a_live_allocation_go_back_to_the_system() -> None:
    # 1 KB blocks come from malloc's heap (Python's own allocator takes up to 512 bytes); one
    # block kept after them pins the top of the heap, so malloc cannot trim it by itself.
    chunks = [bytearray(1024) for _ in range(80_000)]
    pin = bytearray(1024)
    before_free = rss()
    del chunks
    kept = rss()
    assert kept > before_free - 40 * 2**20, "malloc returned the pages by itself"
    assert await MemoryReleaser().release()
    assert rss() < kept - 40 * 2**20
    assert len(pin) == 1024


@linux_glibc
async def test_runs_at_most_once_per_interval() -> None:
    clock = Clock(1000.0)
    releaser = MemoryReleaser(interval=10.0, clock=clock)
    assert await releaser.release()
    clock.now += 9.9
    assert not await releaser.release()
    clock.now += 0.2
    assert await releaser.release()
    assert releaser.releases == 2
