"""Where a job stands (bot/queueview.py) over a real SQLite file: its place in line, in the order
the local queue really starts jobs, and when waiting and running jobs should start and be done,
from learned durations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.durations import Durations, Expected, backend_key
from bot.local_queue import LocalQueue
from bot.notice import When, english_ordinal
from bot.queueview import (
    ESTIMATE_AT_MEDIAN,
    ESTIMATE_MAX,
    done_by,
    estimated_progress,
    eta_of,
    expected_end,
    in_line,
    line_etas,
    place_in_line,
    play_line,
)
from bot.sim.clock import SimClock
from bot.store import Job, JobState, Store
from tests.jobs import job_request

T0 = 1_000_000.0
BACKEND = backend_key("openai", "https://api.example.com/v1")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "bot.sqlite3", clock=SimClock(T0)) as s:
        yield s


async def job_in(store: Store, state: JobState, *, at: float = T0, seconds: str = "4") -> Job:
    new = job_request(prompt="a fox in the snow", seconds=seconds, cost_micros=0)
    job = await store.insert_job(
        new, state="queued_local" if state == "queued_local" else "creating", now=at
    )
    if state == "running":
        assert await store.mark_create_attempted(job.id, at)
        running = await store.attach_video(job.id, f"video_{job.id}", "in_progress", None)
        assert running is not None
        return running
    return job


async def test_the_place_in_line_is_the_order_the_local_queue_starts_jobs(store: Store) -> None:
    running = await job_in(store, "running")
    waiting = [await job_in(store, "queued_local") for _ in range(3)]

    assert await place_in_line(store, running.id) is None
    assert [await place_in_line(store, j.id) for j in waiting] == [1, 2, 3]

    # One slot frees up: the queue starts exactly the job that was 1st, and the others move up.
    assert await store.mark_failed(running.id, "boom", None) is not None
    started: list[int] = []

    async def send(job: Job) -> None:
        started.append(job.id)

    await LocalQueue(store, 1, send=send).start_queued()

    assert started == [waiting[0].id]
    assert [await place_in_line(store, j.id) for j in waiting] == [None, 1, 2]


def test_the_line_is_played_forward_slot_by_slot() -> None:
    now = 100.0
    # One slot, busy for another 60 s; two jobs of 30 s wait.
    assert play_line([160.0], [30.0, 30.0], 1, now) == [(160.0, 190.0), (190.0, 220.0)]
    # Two slots, one free: the first waiting job starts now, the second when the busy one ends.
    assert play_line([160.0], [30.0, 30.0], 2, now) == [(100.0, 130.0), (130.0, 160.0)]
    # Three jobs at the service and one slot (the cap was lowered): two must end first.
    assert play_line([150.0, 120.0, 180.0], [10.0], 1, now) == [(180.0, 190.0)]
    # A slot that should have freed already frees now, not in the past.
    assert play_line([50.0], [10.0], 1, now) == [(100.0, 110.0)]
    # No cap: nobody waits.
    assert play_line([160.0], [30.0], None, now) == [(100.0, 130.0)]


async def test_a_job_at_the_service_should_end_by_its_median_then_its_p90(store: Store) -> None:
    job = await job_in(store, "running")
    expected = Expected(median=60, p90=100, source="history", low=40, samples=3)

    assert expected_end(job, expected, T0 + 10) == T0 + 60
    assert expected_end(job, expected, T0 + 70) == T0 + 100
    assert expected_end(job, expected, T0 + 120) is None  # taking longer than usual


async def test_an_estimated_bar_moves_with_time_and_never_says_done(store: Store) -> None:
    job = await job_in(store, "running")
    expected = Expected(median=60, p90=100, source="history", low=40, samples=3)

    bars = [estimated_progress(job, expected, T0 + t) for t in range(0, 200, 5)]

    assert bars == sorted(bars)
    assert bars[0] == 0 and max(bars) == ESTIMATE_MAX < 100
    assert estimated_progress(job, expected, T0 + 30) == ESTIMATE_AT_MEDIAN // 2
    assert estimated_progress(job, expected, T0 + 60) == ESTIMATE_AT_MEDIAN
    assert ESTIMATE_AT_MEDIAN < estimated_progress(job, expected, T0 + 80) < ESTIMATE_MAX


async def test_with_one_slot_the_third_job_is_second_in_line_with_an_eta(store: Store) -> None:
    durations = Durations(store)
    # One job of this kind has finished: 60 s from send to done.
    done = await job_in(store, "running", at=T0 - 200)
    finished = await store.mark_succeeded(done.id, T0 - 140, None)
    assert finished is not None and await durations.record(BACKEND, finished)
    first = await job_in(store, "running", at=T0)
    second = await job_in(store, "queued_local", at=T0 + 1)
    third = await job_in(store, "queued_local", at=T0 + 2)
    now = T0 + 20

    etas = await line_etas(store, durations, BACKEND, 1, now=now)

    assert set(etas) == {first.id, second.id, third.id}
    assert (etas[first.id].place, etas[first.id].start) == (None, None)
    assert etas[first.id].finish == When(T0 + 60)
    assert (etas[second.id].place, etas[second.id].start) == (1, When(T0 + 60))
    assert etas[second.id].finish == When(T0 + 120)
    assert (etas[third.id].place, etas[third.id].start) == (2, When(T0 + 120))
    assert etas[third.id].finish == When(T0 + 180)
    assert etas[third.id].expected.source == "history"
    assert await eta_of(store, durations, BACKEND, 1, third.id, now=now) == etas[third.id]
    assert await eta_of(store, durations, BACKEND, 1, finished.id, now=now) is None
    assert in_line(2).plain() == "2nd in line"
    said = done_by(etas[third.id])
    assert said is not None and said.shown() == (When(T0 + 180),)
    assert said.plain().startswith("should be done ")


async def test_without_history_the_default_gives_the_eta(store: Store) -> None:
    durations = Durations(store)
    job = await job_in(store, "queued_local", seconds="8")

    (eta,) = (await line_etas(store, durations, BACKEND, 1, now=T0)).values()

    assert eta.place == 1 and eta.start == When(T0)
    assert eta.expected.source == "catalog"
    assert eta.finish == When(T0 + eta.expected.median)
    assert job.id == eta.job_id


def test_ordinals() -> None:
    assert [english_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "101st",
        "111th",
    ]
