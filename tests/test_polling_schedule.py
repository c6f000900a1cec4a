"""Polling by what the bot learned, and the outlook members are shown, over a real SQLite file
and a scripted API on loopback, on a virtual clock the tracker and the store share (each round
is run by hand at a chosen time; nothing here waits for the clock).

- Read job by job (no list), a job is read once early, then not before its kind's lower end
  (less half an interval), then every round; a quick failure is caught by the early read.
- A success leaves a sample, and the next job of that kind is read by it.
- Each round hands every shown job an outlook: its place in line and ETA, an estimated bar where
  the service reports no progress; waiting jobs are told again as the line moves.
- With list, a round also comes a little after a running job's expected end (its kind's learned
  median), never closer than a quarter interval to the one before, and never later than the
  interval; without list, or without history, rounds stay at the interval.
- A job its member cancels while the round is reading it is left alone, without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.api.client import VideosClient
from bot.delivery import Deliverer
from bot.durations import Durations, Expected, backend_key, default_expected, sample_of
from bot.poll_schedule import END_SLACK, next_round_wait, read_due
from bot.queueview import ESTIMATE_AT_MEDIAN, Outlook
from bot.store import Job, Store
from bot.tracker import Tracker
from tests.clock import Clock
from tests.jobs import job_request
from tests.scripted_api import ScriptedAPI, video
from tests.scripted_client import client_for
from tests.sinks import QuietSink

T0 = 1_800_000_000.0
INTERVAL = 10.0
KEY = backend_key("openai", "https://videos.example/v1")
SIZE = "1280x720"


class Recorder:
    """A real listener that keeps what it was told."""

    def __init__(self) -> None:
        self.changed: list[tuple[Job, Outlook | None]] = []
        self.finished: list[Job] = []

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        self.changed.append((job, outlook))

    async def job_finished(self, job: Job) -> None:
        self.finished.append(job)


class Job_:
    """One video at the scripted service: running until `ends_at` on the virtual clock, then
    `final` (completed, or failed with a code); every read's time is kept."""

    def __init__(
        self, clock: Clock, video_id: str, ends_at: float, *, final: str = "completed"
    ) -> None:
        self.clock = clock
        self.video_id = video_id
        self.ends_at = ends_at
        self.final = final
        self.reads: list[float] = []

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        now = self.clock()
        self.reads.append(now)
        if now < self.ends_at:
            body = video(self.video_id, status="in_progress", progress=None, created_at=int(T0))
        elif self.final == "completed":
            body = video(
                self.video_id,
                status="completed",
                progress=100,
                created_at=int(T0),
                completed_at=self.ends_at,
                expires_at=self.ends_at + 3600,
            )
        else:
            body = video(
                self.video_id,
                status="failed",
                created_at=int(T0),
                error={"code": self.final, "message": "Blocked by policy."},
            )
        return web.json_response(body)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "bot.sqlite3", clock=clock) as s:
        yield s


def tracker_for(
    store: Store, client: VideosClient, listener: Any, clock: Clock, **kwargs: Any
) -> Tracker:
    return Tracker(
        store,
        client,
        listener,
        interval=INTERVAL,
        clock=clock,
        durations=Durations(store, clock=clock),
        backend=KEY,
        **kwargs,
    )


async def new_job(store: Store, *, size: str = SIZE, user_id: int = 1, queued: bool = False) -> Job:
    new = job_request(user_id=user_id, size=size)
    return await store.insert_job(new, state="queued_local" if queued else "creating")


async def sent_job(
    store: Store, api: ScriptedAPI, clock: Clock, video_id: str, takes: float, **kwargs: Any
) -> tuple[Job, Job_]:
    """A job whose request leaves now and which the service ends `takes` seconds later."""
    final = kwargs.pop("final", "completed")
    job = await new_job(store, **kwargs)
    assert await store.mark_create_attempted(job.id, clock.now)
    running = await store.attach_video(job.id, video_id, "queued", None)
    assert running is not None
    service = Job_(clock, video_id, clock.now + takes, final=final)
    api.on("GET", f"/videos/{video_id}", service)
    return running, service


async def learned(store: Store, *took: float, size: str = SIZE) -> None:
    """History of the kind: earlier jobs that succeeded after `took` seconds each, learned as
    the tracker learns a success."""
    durations = Durations(store)
    for n, seconds in enumerate(took):
        job = await new_job(store, size=size, user_id=900 + n)
        started = T0 - 10_000 + n
        assert await store.mark_create_attempted(job.id, started)
        assert await store.attach_video(job.id, f"old{n}", "in_progress", None)
        done = await store.mark_succeeded(job.id, completed_at=started + seconds, expires_at=None)
        assert done is not None
        assert await durations.record(KEY, done)


async def rounds(tracker: Tracker, clock: Clock, until: float) -> None:
    """Run the tracker's rounds at every interval from now up to `until` (virtual time)."""
    while clock.now <= until:
        await tracker.poll_once()
        clock.now += INTERVAL


def listed(api: ScriptedAPI, clock: Clock, services: list[Job_]) -> None:
    """`GET /videos` lists every one of `services` (one page), each as of the clock."""

    async def listing(request: web.Request) -> web.StreamResponse:
        data = []
        for service in services:
            await service(request)  # notes the read, as the list's item of that job
            done = clock.now >= service.ends_at
            data.append(
                video(
                    service.video_id,
                    status="completed" if done else "in_progress",
                    progress=100 if done else None,
                    created_at=int(T0),
                    completed_at=service.ends_at if done else None,
                )
            )
        first, last = services[0].video_id, services[-1].video_id
        page = {"object": "list", "data": data, "first_id": first, "last_id": last}
        return web.json_response({**page, "has_more": False})

    api.on("GET", "/videos", listing)


async def rounds_as_the_tracker_has_them(
    tracker: Tracker, clock: Clock, listener: Recorder, until: float
) -> tuple[list[float], dict[int, float]]:
    """Run rounds when the tracker's own loop would (`round_wait`; a round takes no virtual
    time) up to `until`: when each round ran, and when each job was seen finished."""
    ran: list[float] = []
    seen: dict[int, float] = {}
    while clock.now <= until:
        await tracker.poll_once()
        ran.append(clock.now)
        for job in listener.finished:
            seen.setdefault(job.id, clock.now)
        clock.now += tracker.round_wait(0.0)
    return ran, seen


def test_the_rule_a_listed_round_also_comes_at_an_expected_end_never_too_often() -> None:
    floor = INTERVAL / 4
    # No expected end ahead: the interval, counted from the last round.
    assert next_round_wait(0.0, INTERVAL, [], T0) == INTERVAL
    assert next_round_wait(4.0, INTERVAL, [], T0) == INTERVAL - 4
    # An end before the next interval: a round END_SLACK after it ...
    assert next_round_wait(0.0, INTERVAL, [T0 + 6, T0 + 8], T0) == 6 + END_SLACK
    # ... but never closer than a quarter interval to the last round ...
    assert next_round_wait(0.0, INTERVAL, [T0 + 0.5], T0) == floor
    assert next_round_wait(1.0, INTERVAL, [T0 - 0.2], T0) == floor - 1
    # ... nor later than the interval, and an end the last round was already past brings none.
    assert next_round_wait(0.0, INTERVAL, [T0 + 30], T0) == INTERVAL
    assert next_round_wait(0.0, INTERVAL, [T0 - 5], T0) == INTERVAL
    assert next_round_wait(3.0, INTERVAL, [T0 - 4], T0) == INTERVAL - 3
    # Due already (the loop was late): at once.
    assert next_round_wait(12.0, INTERVAL, [T0 + 1], T0) == 0.0
    # At a 1 s interval the slack is a quarter of it, not a whole second.
    assert next_round_wait(0.0, 1.0, [T0 + 0.5], T0) == 0.75


def test_the_rule_an_early_read_then_nothing_until_just_ahead_of_the_lower_end() -> None:
    learned = Expected(median=120, p90=200, source="history", low=90, samples=20)
    # The early read: due about one interval after the job left (a round half an interval
    # early still takes it, as rounds and reads are never exactly an interval apart).
    assert not read_due(T0, None, learned, INTERVAL, T0 + 4)
    assert read_due(T0, None, learned, INTERVAL, T0 + 5)
    assert read_due(T0, None, learned, INTERVAL, T0 + 1, early_check=1)
    # Then nothing until just ahead of the lower end (90 s, less half an interval) ...
    assert not read_due(T0, T0 + 10, learned, INTERVAL, T0 + 84)
    assert read_due(T0, T0 + 10, learned, INTERVAL, T0 + 85)
    # ... and every interval after that.
    assert not read_due(T0, T0 + 85, learned, INTERVAL, T0 + 89)
    assert read_due(T0, T0 + 85, learned, INTERVAL, T0 + 95)
    # Without history there is no lower end: every interval, as before.
    assert read_due(T0, T0 + 10, default_expected("4"), INTERVAL, T0 + 20)


async def test_a_job_is_read_once_early_then_not_before_its_kinds_lower_end(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    # Ten earlier jobs of the kind took 100 s to 190 s: the lower end is 100 s.
    await learned(store, *(100.0 + 10 * n for n in range(10)))
    job, service = await sent_job(store, api, clock, "v1", takes=125)
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url, list=False), listener, clock)

    await rounds(tracker, clock, until=T0 + 150)

    # The early read about one interval in, then nothing until the lower end (100 s, less half
    # an interval: the round at 100 s), then every round until the one after it ended (125 s):
    # noticed within one interval.
    assert [r - T0 for r in service.reads] == [10, 100, 110, 120, 130]
    (done,) = listener.finished
    assert done.id == job.id and done.state == "succeeded"


async def test_a_quick_failure_is_caught_by_the_early_read(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    await learned(store, *(100.0 + 10 * n for n in range(10)))
    job, service = await sent_job(store, api, clock, "v1", takes=4, final="moderation_blocked")
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url, list=False), listener, clock)

    await rounds(tracker, clock, until=T0 + 30)

    # Refused 4 s in: told at the early read, not at the lower end (100 s).
    assert [r - T0 for r in service.reads] == [10]
    (failed,) = listener.finished
    assert failed.id == job.id and failed.state == "failed"
    assert failed.error_code == "moderation_blocked"
    # A failure says nothing of how long the kind takes.
    assert len(await store.recent_durations(
        backend=KEY, model="sora-2", size=SIZE, seconds="4", limit=50
    )) == 10  # fmt: skip


async def test_a_success_is_learned_and_the_next_job_of_its_kind_is_read_by_it(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url, list=False), listener, clock)
    # Nothing learned yet: the first job is read every round, as without history.
    first, first_service = await sent_job(store, api, clock, "v1", takes=60)
    await rounds(tracker, clock, until=T0 + 60)
    assert [r - T0 for r in first_service.reads] == [10, 20, 30, 40, 50, 60]
    assert await store.recent_durations(
        backend=KEY, model="sora-2", size=SIZE, seconds="4", limit=50
    ) == [60.0]

    # The next job of that kind is left alone until its lower end (60 s); one of another kind
    # is not.
    clock.now = T0 + 100
    same, same_service = await sent_job(store, api, clock, "v2", takes=60)
    other, other_service = await sent_job(store, api, clock, "v3", takes=60, size="720x1280")
    await rounds(tracker, clock, until=T0 + 160)
    assert [r - T0 for r in same_service.reads] == [110, 160]
    assert [r - T0 for r in other_service.reads] == [110, 120, 130, 140, 150, 160]
    assert {j.id for j in listener.finished} == {first.id, same.id, other.id}


async def test_with_list_one_request_covers_every_job_each_round(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    await learned(store, *(100.0 + 10 * n for n in range(10)))
    jobs = [await sent_job(store, api, clock, f"v{i}", takes=125) for i in range(3)]
    listed(api, clock, [service for _, service in jobs])
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url), listener, clock)
    await rounds(tracker, clock, until=T0 + 130)
    # Listed in every round, lower end or not: one request a round whatever the number of jobs.
    assert api.count("GET", "/videos") == 14
    assert all(api.count("GET", f"/videos/v{i}") == 0 for i in range(3))
    assert len(listener.finished) == 3


class OutlookSink(QuietSink):
    """A real delivery sink that keeps every outlook it is handed, and says when one of a job
    arrives."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, Outlook | None]] = []
        self.arrived = asyncio.Event()

    async def show_progress(self, job: Job, outlook: Outlook | None = None) -> None:
        self.seen.append((job.id, job.state, outlook))
        self.arrived.set()

    def last(self, job_id: int) -> Outlook | None:
        shown = [o for j, _, o in self.seen if j == job_id]
        return shown[-1] if shown else None

    async def wait_for(self, job_id: int, check: Any) -> Outlook:
        """The first outlook of `job_id` that passes `check`, as it arrives."""
        while True:
            found = [o for j, _, o in self.seen if j == job_id and o is not None and check(o)]
            if found:
                return found[0]
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)


async def test_the_outlook_reaches_the_sink_with_place_and_eta_and_moves_with_the_line(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock, tmp_path: Path
) -> None:
    # Jobs of this kind took 60 s; one slot; one job at the service, two waiting for the slot.
    await learned(store, 60.0, 60.0, 60.0)
    running, _ = await sent_job(store, api, clock, "v1", takes=60)
    second = await new_job(store, user_id=2, queued=True)
    third = await new_job(store, user_id=3, queued=True)
    client = client_for(http, api.url, list=False, progress=False)
    sink = OutlookSink()
    deliverer = Deliverer(store, client, sink, tmp_path / "media", clock=clock)
    tracker = tracker_for(store, client, deliverer, clock, max_concurrent=1)

    clock.now = T0 + 30
    await tracker.poll_once()
    # The job at the service: should be done at 60 s, and its bar is estimated (the service
    # reports none), halfway to the median's mark.
    at_service = await sink.wait_for(running.id, lambda o: o.finish is not None)
    assert at_service.place is None and at_service.finish is not None
    assert at_service.finish.at == T0 + 60
    assert at_service.estimated and at_service.estimated_progress == ESTIMATE_AT_MEDIAN // 2
    assert at_service.learned
    # Waiting: 1st and 2nd in line, each done a learned duration after the slot it waits for.
    first_in_line = await sink.wait_for(second.id, lambda o: o.place == 1)
    second_in_line = await sink.wait_for(third.id, lambda o: o.place == 2)
    assert first_in_line.finish is not None and first_in_line.finish.at == T0 + 120
    assert second_in_line.finish is not None and second_in_line.finish.at == T0 + 180
    assert first_in_line.estimated_progress is None and not first_in_line.estimated

    # The job at the service ends; the queue starts the next one; the last moves up.
    clock.now = T0 + 60
    await tracker.poll_once()  # notices the end
    clock.now = T0 + 70
    await tracker.poll_once()  # the freed slot goes to the 1st in line
    moved_up = await sink.wait_for(third.id, lambda o: o.place == 1)
    # The job taken from the line is about to be sent: done a learned duration from now (130
    # s), and the last one a duration after that.
    assert (await store.get_job(second.id)).state == "creating"  # type: ignore[union-attr]
    sending = await sink.wait_for(second.id, lambda o: o.place is None)
    assert sending.finish is not None and sending.finish.at == T0 + 130
    assert moved_up.finish is not None and moved_up.finish.at == T0 + 190
    # Nothing moved meanwhile for the job being sent: told once, not every round.
    await deliverer.tasks.drain()
    told = len(sink.seen)
    clock.now = T0 + 71
    await tracker.show_outlooks()
    await deliverer.tasks.drain()
    assert len(sink.seen) == told


async def test_a_job_cancelled_while_its_read_is_under_way_is_left_alone_quietly(
    store: Store,
    api: ScriptedAPI,
    http: httpx.AsyncClient,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job, _ = await sent_job(store, api, clock, "v1", takes=0)

    async def cancelled_then_completed(request: web.Request) -> web.StreamResponse:
        # The member's Cancel lands while the tracker's read is on its way.
        assert await store.cancel_job(
            job.id, job.user_id, video_id="v1", message="Cancelled by its member."
        )
        return web.json_response(
            video("v1", status="completed", progress=100, completed_at=T0, created_at=int(T0))
        )

    api.on("GET", "/videos/v1", cancelled_then_completed)
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url, list=False), listener, clock)
    clock.now = T0 + INTERVAL
    with caplog.at_level(logging.INFO):
        stats = await tracker.poll_once()
    assert stats.errors == 0 and listener.finished == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    ended = await store.get_job(job.id)
    assert ended is not None and ended.cancelled and ended.state == "failed"


async def test_a_whole_second_completion_stamp_a_little_before_the_send_counts_as_no_time(
    store: Store,
) -> None:
    # Services stamp completion in whole seconds, cut down: a job done within the second it
    # was sent may look done before it was. More than a second before is a clock gone wrong.
    samples = []
    for sent, stamp in ((T0 + 0.4, T0), (T0 + 2.5, T0)):
        job = await new_job(store)
        assert await store.mark_create_attempted(job.id, sent)
        assert await store.attach_video(job.id, f"s{job.id}", "in_progress", None)
        done = await store.mark_succeeded(job.id, completed_at=stamp, expires_at=None)
        assert done is not None
        samples.append(sample_of(done))
    assert samples == [0.0, None]


async def test_with_list_a_round_comes_just_after_a_jobs_expected_end(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    # The kind takes 120 s; the jobs leave between two rounds, so at the interval they would be
    # noticed 8 and 4 s after their ends (rounds at ..., 120, 130).
    await learned(store, *([120.0] * 10))
    services: list[Job_] = []
    for at, video_id in ((2.0, "v0"), (6.0, "v1"), (8.0, "v2")):
        clock.now = T0 + at
        services.append((await sent_job(store, api, clock, video_id, takes=120))[1])
    # Three jobs of a kind without history (no promise, no round of their own) keep the list in
    # use (it takes three running jobs) after those end.
    for n in range(3):
        others = await sent_job(store, api, clock, f"w{n}", takes=300, size="720x1280")
        services.append(others[1])
    listed(api, clock, services)
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url), listener, clock)
    clock.now = T0 + 10
    ran, seen = await rounds_as_the_tracker_has_them(tracker, clock, listener, until=T0 + 140)
    ends = {job.id: job.completed_at for job in listener.finished}
    lags = sorted(seen[job_id] - (end or 0.0) for job_id, end in ends.items())
    # Rounds at the interval up to 120, then a second after each expected end (122 -> 123,
    # 126 -> 127), for the third (128 -> 129) a quarter interval after the last round; then
    # back to the interval.
    assert ran == [T0 + t for t in (*range(10, 121, 10), 123, 127, 129.5, 139.5)]
    assert lags == [1.0, 1.0, 1.5]
    # Listed every round: two list requests more than the 14 rounds at the interval make.
    assert api.count("GET", "/videos") == len(ran) == 16
    assert all(api.count("GET", f"/videos/{s.video_id}") == 0 for s in services)


async def test_rounds_stay_at_the_interval_without_list_or_without_history(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    # No history: the catalog hint is no promise, so no round of its own.
    services = [(await sent_job(store, api, clock, f"v{i}", takes=12))[1] for i in range(3)]
    listed(api, clock, services)
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url), listener, clock)
    ran, _ = await rounds_as_the_tracker_has_them(tracker, clock, listener, until=T0 + 25)
    assert ran == [T0, T0 + 10, T0 + 20]
    assert len(listener.finished) == 3


async def test_read_job_by_job_rounds_stay_at_the_interval_whatever_was_learned(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    await learned(store, *([30.0] * 10))
    jobs = [await sent_job(store, api, clock, f"v{i}", takes=32) for i in range(3)]
    listener = Recorder()
    tracker = tracker_for(store, client_for(http, api.url), listener, clock)
    ran, seen = await rounds_as_the_tracker_has_them(tracker, clock, listener, until=T0 + 45)
    assert ran == [T0 + t for t in (0, 10, 20, 30, 40)]
    assert set(seen.values()) == {T0 + 40}
    # The one list request was refused (no such route): job by job from then on.
    assert tracker.list_refused and api.count("GET", "/videos") == 1
    assert all(len(service.reads) >= 2 for _, service in jobs)


async def test_no_round_of_its_own_where_the_server_asked_for_rounds_further_apart(
    store: Store, api: ScriptedAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    await learned(store, *([120.0] * 10))
    services = [(await sent_job(store, api, clock, f"v{i}", takes=120))[1] for i in range(3)]
    listed(api, clock, services)
    tracker = tracker_for(store, client_for(http, api.url), Recorder(), clock)
    clock.now = T0 + 115
    await tracker.poll_once()
    assert tracker.round_wait(0.0) == 120 + END_SLACK - 115
    # `openai-poll-after-ms` asked for 30 s: that, and no round for the expected end.
    tracker.client.poll_after = 30.0
    assert tracker.round_wait(0.0) == 30.0
