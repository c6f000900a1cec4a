"""Polling by learned durations, and how soon a completion is noticed (part of `polling`).

(g) A backend without list at 1000 jobs: a GET per job per round is what it costs today. The
    bot's `Tracker` is run twice over the same 1000 jobs, each taking its own time (drawn from a
    log-normal spread around two minutes, the same draw both times): once as today (every job
    read every round) and once with learned durations (`Durations` over the store: one early read
    about an interval in, then nothing before the kind's lower end, then every round). The
    durations are learned the way the bot learns them: 50 jobs of the kind run through the same
    tracker first, each success leaving its sample. Rows: GETs per job either way, the ratio
    (target >= 3x fewer), and how long after its end each job was noticed (target: within one
    interval for every job). Two spreads: a narrow one (sigma 0.1: a self-hosted server running
    fixed steps) and a wide one (sigma 0.25) to show what the schedule gains when jobs of a kind
    vary much.
(h) With list (one request a page for every job): jobs created one by one at odd moments so
    their ends fall anywhere between rounds; the time from a job's completion at the service to
    the tracker noticing it, mean and median, and the list requests it took, with rounds at the
    interval only (as before) and with rounds as the tracker has them (`Tracker.round_wait`:
    also just after each running job's expected end), jobs all of 120 s and drawn around it
    (sigma 0.1), at the default interval (10 s); and at 1 s in real time (the tracker's loop).

Everything runs in this process against a `SimServer` on a `SimClock`: time is virtual, so each
"completed -> noticed" is exact (the simulator's own completion time against the virtual time of
the round that saw it) and leaves out the real time a round takes, which each row gives apart
(its longest round, wall clock).
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from benchmarks.common import Row, verdict
from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.models import CreateVideo, Video
from bot.api.profiles import capabilities
from bot.api.ratelimit import MinuteRateLimiter
from bot.durations import Durations, backend_key
from bot.queueview import Outlook
from bot.sim import SimClock, SimConfig, SimServer
from bot.store import Job, NewJob, Store
from bot.tracker import Tracker

REQUEST = CreateVideo(prompt="bench schedule", model="sora-2", seconds="4", size="1280x720")
MEDIAN_SECONDS = 120.0
INTERVAL = 10.0
JOBS = 1000
QUICK_JOBS = 100
HISTORY_JOBS = 50
# A self-hosted server running fixed steps varies by a few percent; hosted services more.
SPREADS = (0.05, 0.1, 0.25)
# With list: every job of the same length (0), and a 10 % spread.
LIST_SPREADS = (0.0, 0.1)


async def sent_job(
    store: Store,
    client: VideosClient,
    request: CreateVideo,
    user_id: int,
    clock: Callable[[], float],
) -> tuple[Job, Video]:
    """A job recorded as the bot's submit path records it and its create sent: the job and
    the service's answer, for the caller to attach once it has set up anything else."""
    new = NewJob(
        user_id=user_id,
        channel_id=10,
        prompt=request.prompt,
        model=request.model or "sora-2",
        seconds=request.seconds or "4",
        size=request.size or "1280x720",
        cost_micros=400_000,
    )
    job = await store.insert_job(new)
    await store.mark_create_attempted(job.id, clock())
    return job, await client.create(request)


# (h) in real time: jobs of this many seconds, created at random moments over as long.
REAL_JOBS = 200
REAL_JOB_SECONDS = 3.0
REAL_INTERVAL = 1.0
TARGET_RATIO = 3.0
KEY = backend_key("openai", "http://bench.invalid/v1")
MAX_ROUNDS = 10_000


@dataclass
class Run:
    """What one tracker run over the measured jobs came to."""

    jobs: int
    gets: int = 0
    lists: int = 0
    # Per job: seconds (virtual, or wall in real time) from its completion at the service to
    # the tracker hearing of it.
    lags: list[float] = field(default_factory=list)
    longest_round: float = 0.0


class Noticed:
    """The tracker's listener: when (on `clock`) each job was seen finished."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.at: dict[str, float] = {}
        self.failed = 0
        self.all_seen = asyncio.Event()
        self.expected: set[str] | None = None

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        return None

    async def job_finished(self, job: Job) -> None:
        if job.state != "succeeded":
            self.failed += 1
        if job.api_video_id is not None:
            self.at[job.api_video_id] = self.clock()
        if self.expected is not None and self.expected <= self.at.keys():
            self.all_seen.set()

    def expect(self, video_ids: list[str]) -> None:
        """`all_seen` is set once each of these was seen finished."""
        self.expected = set(video_ids)
        if self.expected <= self.at.keys():
            self.all_seen.set()


class Bench:
    """A simulator on a virtual clock, a client for it, a store and one tracker."""

    def __init__(self, work: Path, *, listed: bool, learned: bool, interval: float) -> None:
        self.work = work
        self.clock = SimClock(start=float(int(time.time())))
        self.sim = SimServer(
            SimConfig(
                job_seconds=MEDIAN_SECONDS,
                cache_dir=work / "sim-cache",
                seed=1,
                clip="prepared",
                retention_seconds=10 * 86_400,
            ),
            clock=self.clock.now,
        )
        self.listed = listed
        self.learned = learned
        self.interval = interval
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=5.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        self.noticed = Noticed(self.clock.now)
        self.requests: Counter[str] = Counter()
        self.store: Store
        self.tracker: Tracker

    async def __aenter__(self) -> Bench:
        url = await self.sim.start()
        caps = capabilities("openai", None if self.listed else {"list": False})
        config = ClientConfig(base_url=url, api_key=SecretStr("bench"), capabilities=caps)
        # No effective limit: the limiter sleeps in real time, which a virtual clock never sees.
        limiter = MinuteRateLimiter(10**9, clock=self.clock.now)
        client = VideosClient(self.http, config, limiter=limiter)
        self.store = await Store.open(
            self.work / "bot.sqlite3", clock=self.clock.now, synchronous="NORMAL"
        )
        durations = Durations(self.store, clock=self.clock.now) if self.learned else None
        self.tracker = Tracker(
            self.store,
            client,
            self.noticed,
            interval=self.interval,
            clock=self.clock.now,
            durations=durations,
            backend=KEY,
        )
        self.client = client
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()
        await self.http.aclose()
        await self.sim.stop()

    async def submit(self, n: int, took: float) -> str:
        """One job as the bot's submit path records it, taking `took` seconds at the service."""
        job, video = await sent_job(self.store, self.client, REQUEST, 1000 + n, self.clock.now)
        self.sim.jobs.videos[video.id].job_seconds = took
        await self.store.attach_video(job.id, video.id, video.status, video.progress)
        return video.id

    def count(self) -> None:
        for request in self.sim.requests:
            if request.status is None or request.status >= 400:
                raise RuntimeError(f"the simulator refused a request: {request}")
            self.requests[request.route or ""] += 1
        # The log keeps at most 10,000 entries: emptied at every round.
        self.sim.requests.clear()

    async def round(self, run: Run | None) -> None:
        began = time.perf_counter()
        await self.tracker.poll_once()
        if run is not None:
            run.longest_round = max(run.longest_round, time.perf_counter() - began)
        self.count()

    async def until_done(
        self, run: Run | None, arrivals: list[tuple[float, float]], *, at_interval: bool = False
    ) -> None:
        """Create jobs at their (virtual) arrival times, each taking its own time; run rounds
        when the tracker's own loop would (`Tracker.round_wait`), or at the interval only if
        `at_interval`, until every job has been seen finished."""
        start = self.clock.now()
        pending = sorted(arrivals)
        made: list[str] = []
        next_round = start
        for _ in range(MAX_ROUNDS):
            while pending and start + pending[0][0] <= next_round:
                at, took = pending.pop(0)
                self.clock.advance(max(0.0, start + at - self.clock.now()))
                made.append(await self.submit(len(made), took))
            self.clock.advance(max(0.0, next_round - self.clock.now()))
            await self.sim.settle()
            await self.round(run)
            if not pending and all(v in self.noticed.at for v in made):
                break
            if at_interval:
                next_round += self.interval
            else:
                # A round takes no virtual time: the next one is this long after it began.
                next_round = self.clock.now() + self.tracker.round_wait(0.0)
        else:
            raise RuntimeError("the jobs never finished")
        if self.noticed.failed:
            raise RuntimeError("a simulated job failed")
        if run is not None:
            for video_id in made:
                completed = self.sim.jobs.videos[video_id].completed_at
                if completed is None:
                    raise RuntimeError("a job noticed finished never completed")
                run.lags.append(self.noticed.at[video_id] - completed)
            run.gets = self.requests["GET /videos/{id}"]
            run.lists = self.requests["GET /videos"]


def durations_drawn(n: int, sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [MEDIAN_SECONDS * math.exp(rng.gauss(0.0, sigma)) for _ in range(n)]


async def without_list(work: Path, jobs: int, sigma: float, *, learned: bool) -> Run:
    """(g): `jobs` jobs created at once, read job by job; first 50 to learn from if `learned`."""
    async with Bench(work, listed=False, learned=learned, interval=INTERVAL) as bench:
        if learned:
            history = durations_drawn(HISTORY_JOBS, sigma, seed=2)
            await bench.until_done(None, [(0.0, took) for took in history])
            bench.requests.clear()
            bench.clock.advance(INTERVAL / 3)
        run = Run(jobs)
        measured = durations_drawn(jobs, sigma, seed=1)
        await bench.until_done(run, [(0.0, took) for took in measured])
        return run


async def with_list(work: Path, jobs: int, sigma: float, *, at_interval: bool) -> Run:
    """(h), virtual time: jobs created at random moments over one job's time, read by list;
    each taking MEDIAN_SECONDS (sigma 0) or its own time drawn around it. Rounds at the interval
    only (`at_interval`, as before rounds came at expected ends too) or as the tracker has them."""
    async with Bench(work, listed=True, learned=True, interval=INTERVAL) as bench:
        rng = random.Random(3)
        took = durations_drawn(jobs, sigma, seed=5)
        arrivals = [(rng.uniform(0, MEDIAN_SECONDS), took[n]) for n in range(jobs)]
        run = Run(jobs)
        await bench.until_done(run, arrivals, at_interval=at_interval)
        return run


async def with_list_real_time(work: Path, jobs: int) -> Run:
    """(h), real time: the tracker's own loop (`start()`) at REAL_INTERVAL against the simulator
    on the real clock, jobs created at random moments; when each was seen finished against
    when the simulator completed it."""
    sim = SimServer(
        SimConfig(
            job_seconds=REAL_JOB_SECONDS, cache_dir=work / "sim-cache", seed=1, clip="prepared"
        )
    )
    url = await sim.start()
    http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))
    store = await Store.open(work / "bot.sqlite3", synchronous="NORMAL")
    noticed = Noticed(time.time)
    try:
        config = ClientConfig(
            base_url=url, api_key=SecretStr("bench"), capabilities=capabilities("openai")
        )
        client = VideosClient(http, config, limiter=MinuteRateLimiter(10**9))
        tracker = Tracker(
            store,
            client,
            noticed,
            interval=REAL_INTERVAL,
            durations=Durations(store),
            backend=KEY,
        )
        # Rendered once before the clock starts counting (every job shares the clip).
        warm = await client.create(REQUEST)
        await sim.settle()
        sim.jobs.videos.pop(warm.id)
        rng = random.Random(4)
        delays = sorted(rng.uniform(0, REAL_JOB_SECONDS) for _ in range(jobs))
        made: list[str] = []
        tracker.start()
        began = time.monotonic()
        for n, delay in enumerate(delays):
            await asyncio.sleep(max(0.0, began + delay - time.monotonic()))
            job, video = await sent_job(store, client, REQUEST, 2000 + n, time.time)
            await store.attach_video(job.id, video.id, video.status, video.progress)
            made.append(video.id)
        noticed.expect(made)
        await asyncio.wait_for(noticed.all_seen.wait(), REAL_JOB_SECONDS * 4 + 60)
        await tracker.stop()
        run = Run(jobs)
        for video_id in made:
            completed = sim.jobs.videos[video_id].completed_at
            if completed is None:
                raise RuntimeError("a job noticed finished never completed")
            run.lags.append(noticed.at[video_id] - completed)
        run.lists = sum(1 for r in sim.requests if r.route == "GET /videos")
        return run
    finally:
        await store.close()
        await http.aclose()
        await sim.stop()


def schedule_rows(quick: bool) -> list[Row]:
    jobs = QUICK_JOBS if quick else JOBS
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n, sigma in enumerate(SPREADS[:1] if quick else SPREADS):
            today_dir, learned_dir = work / f"today-{n}", work / f"learned-{n}"
            today_dir.mkdir()
            learned_dir.mkdir()
            today = asyncio.run(without_list(today_dir, jobs, sigma, learned=False))
            learned = asyncio.run(without_list(learned_dir, jobs, sigma, learned=True))
            rows += no_list_rows(jobs, sigma, today, learned)
        for n, sigma in enumerate(LIST_SPREADS[:1] if quick else LIST_SPREADS):
            runs: dict[bool, Run] = {}
            for at_interval in (True, False):
                where = work / f"listed-{n}-{at_interval}"
                where.mkdir()
                runs[at_interval] = asyncio.run(
                    with_list(where, jobs, sigma, at_interval=at_interval)
                )
            rows += listed_rows(jobs, sigma, runs[True], runs[False])
        (work / "real").mkdir()
        real = asyncio.run(with_list_real_time(work / "real", REAL_JOBS))
        rows.append(
            list_row(
                f"{REAL_JOBS} jobs, list, {REAL_INTERVAL:g} s rounds, real time",
                REAL_INTERVAL,
                real,
                f"wall seconds from each job's completion at the simulator to the tracker's "
                f"listener hearing of it, the tracker's own loop at {REAL_INTERVAL:g} s, "
                f"{REAL_JOBS} jobs of {REAL_JOB_SECONDS:g} s created at random moments over "
                f"{REAL_JOB_SECONDS:g} s, listed",
            )
        )
    return rows


def lag_text(run: Run, interval: float) -> str:
    within = sum(1 for lag in run.lags if lag <= interval + 1e-6)
    return (
        f"noticed within one interval of its end: {within} of {run.jobs} "
        f"(slowest {max(run.lags):.1f} s)"
    )


def no_list_rows(jobs: int, sigma: float, today: Run, learned: Run) -> list[Row]:
    spread = f"sigma {sigma:g}"
    what = (
        f"GETs per job, {jobs} jobs of ~{MEDIAN_SECONDS:.0f} s ({spread} log-normal) on a backend "
        f"without list, {INTERVAL:g} s rounds, virtual clock"
    )
    per_today = today.gets / today.jobs
    per_learned = learned.gets / learned.jobs
    ratio = per_today / per_learned
    all_within = all(lag <= INTERVAL + 1e-6 for lag in learned.lags)
    return [
        Row(
            f"polling, {jobs} jobs, no list ({spread}): (g) every round (today)",
            f"{per_today:.2f} GETs/job",
            f"{lag_text(today, INTERVAL)}; longest round {today.longest_round * 1000:.0f} ms",
            what + ": every job read every round",
        ),
        Row(
            f"polling, {jobs} jobs, no list ({spread}): (g) learned durations",
            f"{per_learned:.2f} GETs/job",
            f"{lag_text(learned, INTERVAL)}; longest round {learned.longest_round * 1000:.0f} ms; "
            f"learned from {HISTORY_JOBS} earlier jobs of the kind",
            what + ": one early read, then none before the kind's lower end, then every round",
        ),
        Row(
            f"polling, {jobs} jobs, no list ({spread}): (g) today / learned",
            f"{ratio:.2f}x fewer GETs",
            f"target >= {TARGET_RATIO:g}x fewer with every completion noticed within one "
            f"interval: {verdict(ratio >= TARGET_RATIO and all_within)}",
            "GETs per job of the run reading every round divided by those of the learned one",
        ),
    ]


def list_row(name: str, interval: float, run: Run, what: str) -> Row:
    mean = statistics.fmean(run.lags)
    middle = statistics.median(run.lags)
    longest = (
        f"; longest round {run.longest_round * 1000:.0f} ms (wall, not in the figures)"
        if run.longest_round
        else ""
    )
    return Row(
        f"polling, {name}: (h) completed -> noticed",
        f"mean {mean:.2f} s, median {middle:.2f} s",
        f"target: mean within half an interval ({interval / 2:g} s): "
        f"{verdict(mean <= interval / 2)}; {lag_text(run, interval)}; "
        f"{run.lists} list requests ({run.lists / run.jobs:.2f} a job){longest}",
        what,
    )


def listed_rows(jobs: int, sigma: float, today: Run, woken: Run) -> list[Row]:
    kind = f"{MEDIAN_SECONDS:g} s" if sigma == 0 else f"~{MEDIAN_SECONDS:g} s (sigma {sigma:g})"
    what = (
        f"virtual seconds from each job's completion at the simulator to the tracker round that "
        f"saw it, {jobs} jobs of {kind} created at random moments over {MEDIAN_SECONDS:g} s, "
        f"listed"
    )
    name = f"{jobs} jobs of {kind}, list, {INTERVAL:g} s rounds, virtual clock"
    extra = (woken.lists - today.lists) / jobs
    return [
        list_row(f"{name}, rounds at the interval", INTERVAL, today, what + ", rounds every 10 s"),
        list_row(
            f"{name}, rounds also at expected ends",
            INTERVAL,
            woken,
            what + ", rounds every 10 s and at each running job's expected end "
            f"(+{extra:.2f} list requests a job)",
        ),
    ]
