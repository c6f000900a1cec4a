"""The video API's requests-per-minute ceiling shared by every process on one database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.backend import open_backend
from bot.durations import backend_key
from bot.settings import Settings
from bot.shared_rate import RETRY_AFTER, SharedMinuteLimiter
from bot.sim import SimConfig, SimServer
from bot.store import Store
from bot.store.db import execute, fetch_all
from bot.store.ratelog import take_slot
from tests.clock import Clock

WINDOW = 0.5
# Grant times compared in floats (the log's rule rounds `now - window`, this test `b - a`).
ROUNDING = 1e-6


class GrantClock:
    """The wall clock, remembering its last reading: a limiter reads its clock last, inside the
    transaction, for the time it records a grant at, so after `acquire` this is that time."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = time.time()
        return self.last


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "pg"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The database, once per engine: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "bot.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def two_stores(target: Path | str) -> AsyncIterator[tuple[Store, Store]]:
    """Two processes' views of one database: two stores, each with its own connection(s)."""
    async with await Store.open(target) as first, await Store.open(target) as second:
        yield first, second


def most_in_any_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    return max(sum(1 for s in starts[i:] if s - t < window) for i, t in enumerate(starts))


async def test_processes_share_one_ceiling(two_stores: tuple[Store, Store]) -> None:
    bucket = "openai:0123456789abcdef"
    clocks = [GrantClock(), GrantClock()]
    limiters = [
        SharedMinuteLimiter(store, bucket, 5, window=WINDOW, clock=clock)
        for store, clock in zip(two_stores, clocks, strict=True)
    ]
    grants: list[float] = []

    async def one(i: int) -> None:
        await limiters[i % 2].acquire()
        grants.append(clocks[i % 2].last)

    await asyncio.gather(*(one(i) for i in range(12)))
    # All twelve started, never more than five in a window across both stores...
    assert len(grants) == 12
    assert most_in_any_window(grants, WINDOW - ROUNDING) == 5
    # ...in waves: five, five, then two, a window apart.
    grants.sort()
    assert grants[5] - grants[0] >= WINDOW - ROUNDING
    assert grants[10] - grants[5] >= WINDOW - ROUNDING


async def test_a_bucket_is_independent_of_another(target: Path | str) -> None:
    clock = Clock(1000.0)
    async with await Store.open(target) as store:
        full = SharedMinuteLimiter(store, "openai:aaaa", 2, clock=clock, sleep=clock.sleep)
        other = SharedMinuteLimiter(store, "openai:bbbb", 2, clock=clock, sleep=clock.sleep)
        await full.acquire()
        await full.acquire()
        # The full bucket would wait; the other one is granted at once.
        waits = await store.take_request_slot("openai:aaaa", per_minute=2, window=60, clock=clock)
        assert waits == pytest.approx(60.0)
        await other.acquire()
        await other.acquire()
        assert clock.now == 1000.0
        # The third request of the first bucket waited for the first to leave its window.
        await full.acquire()
        assert clock.now == pytest.approx(1060.0)


async def test_take_slot_says_how_long_until_the_oldest_leaves(target: Path | str) -> None:
    async with await Store.open(target) as store, store.transaction() as conn:
        for t in (100.0, 101.0, 102.0):
            assert await take_slot(conn, "b", 3, 60.0, t) == 0.0
        # Full: until the start at 100 is a window old.
        assert await take_slot(conn, "b", 3, 60.0, 110.0) == pytest.approx(50.0)
        assert await take_slot(conn, "b", 3, 60.0, 159.5) == pytest.approx(0.5)
        # A refusal recorded nothing: at 160 the oldest has left, and one more fits.
        assert await take_slot(conn, "b", 3, 60.0, 160.0) == 0.0
        assert await take_slot(conn, "b", 3, 60.0, 160.0) == pytest.approx(1.0)
        # Another bucket has its own log.
        assert await take_slot(conn, "c", 3, 60.0, 160.0) == 0.0


async def test_a_clock_stepped_back_does_not_shut_the_bucket(target: Path | str) -> None:
    async with await Store.open(target) as store, store.transaction() as conn:
        for _ in range(3):
            assert await take_slot(conn, "b", 3, 60.0, 5000.0) == 0.0
        # Half a window back: the oldest start is 90 s from leaving, but no wait is longer than
        # a window.
        assert await take_slot(conn, "b", 3, 60.0, 4970.0) == pytest.approx(60.0)
        # An hour back: starts "from the future" would hold the bucket shut for an hour.
        assert await take_slot(conn, "b", 3, 60.0, 1400.0) == 0.0


async def test_the_limiter_reads_its_clock_after_winning_the_turn(target: Path | str) -> None:
    """A start is recorded at the time it is granted, not when its request began waiting for
    another process's transaction (it would leave the window that much too soon)."""
    clock = Clock(2000.0)
    async with await Store.open(target) as store:
        limiter = SharedMinuteLimiter(store, "b", 1, clock=clock, sleep=clock.sleep)
        async with store.transaction():
            waiting = asyncio.create_task(limiter.acquire())
            # The transaction this one waits behind takes a while.
            await asyncio.sleep(0)
            clock.now += 30.0
        await waiting
        # Recorded at 2030: the next request waits until 2090, not 2060.
        assert await store.take_request_slot("b", per_minute=1, window=60, clock=clock) == (
            pytest.approx(60.0)
        )


async def test_a_database_error_falls_back_to_this_process_pace(
    two_stores: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    store, other = two_stores
    clock = Clock(3000.0)
    limiter = SharedMinuteLimiter(store, "b", 3, clock=clock, sleep=clock.sleep)
    await limiter.acquire()

    async def move_log(old: str, new: str) -> None:
        async with other.transaction() as conn:
            await execute(conn, f"ALTER TABLE {old} RENAME TO {new}")

    # The log out of reach: every take fails, as on a database that stopped answering.
    await move_log("request_log", "request_log_away")
    starts: list[float] = []
    for _ in range(5):
        await limiter.acquire()
        starts.append(clock.now)
    # Not stalled, and not unlimited: this process alone keeps to the ceiling (its own log
    # starts empty, so the start before the failure is not counted).
    assert starts == [3000.0, 3000.0, 3000.0, 3060.0, 3060.0]
    unavailable = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(unavailable) == 1

    # Back: asked again a few seconds after the last failure, and shared once more.
    await move_log("request_log_away", "request_log")
    clock.now += RETRY_AFTER
    await limiter.acquire()
    assert [r for r in caplog.records if "answers again" in r.getMessage()]
    async with other.transaction() as conn:
        rows = await fetch_all(conn, "SELECT at FROM request_log WHERE bucket = ?", ("b",))
    assert [float(r[0]) for r in rows] == [3060.0 + RETRY_AFTER]


async def test_a_database_that_hangs_does_not_hold_the_requests(pg_url: str) -> None:
    """PostgreSQL: a take waits for the write lock, which a stuck transaction elsewhere holds."""
    async with await Store.open(pg_url) as store, await Store.open(pg_url) as other:
        limiter = SharedMinuteLimiter(store, "b", 3, window=WINDOW, db_timeout=0.1)
        held, release = asyncio.Event(), asyncio.Event()

        async def stuck() -> None:
            async with other.transaction():
                held.set()
                await release.wait()

        holder = asyncio.create_task(stuck())
        await held.wait()
        try:
            # Admitted at this process's pace while the lock stays taken (the outer timeout
            # only turns a hang into a failure).
            async with asyncio.timeout(30):
                for _ in range(3):
                    await limiter.acquire()
        finally:
            release.set()
            await holder
        async with other.transaction() as conn:
            rows = await fetch_all(conn, "SELECT at FROM request_log WHERE bucket = ?", ("b",))
        assert rows == []


async def test_a_backend_on_a_shared_database_shares_its_ceiling(
    target: Path | str, tmp_path: Path
) -> None:
    """The bot's own wiring: on PostgreSQL every process's requests to a server go in one log
    under the server's backend key (so a second process sees the ceiling reached); on SQLite,
    one process per database, they stay in the process."""
    async with SimServer(SimConfig()) as url, contextlib.AsyncExitStack() as stack:
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            openai_base_url=url,
            openai_api_key="sk-test-123",
            video_api_profile="openai",
            openai_requests_per_minute=2,
        )
        first = await stack.enter_async_context(await Store.open(target))
        second = await stack.enter_async_context(await Store.open(target))
        backend = await open_backend(settings, stack, store=first)
        await backend.client.list()
        await backend.client.list()
        bucket = backend_key("openai", url)
        wait = await second.take_request_slot(bucket, per_minute=2, window=60)
        if second.shared:
            assert 0 < wait <= 60
        else:
            assert wait == 0.0
