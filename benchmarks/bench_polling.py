"""Video API requests per job-minute while 1, 100 or 1000 two-minute jobs run at once, for several
ways of polling, and how old a job's status gets between refreshes.

(a) a poller per job every 1 s: what the official SDK's `create_and_poll` does by default
    (a retrieve right after the create, then one per second until the job is done);
(b) the same poller every 10 s;
(c) the bot's `Tracker` at its default interval, where the backend can list (openai profile):
    one list request refreshes up to 100 jobs;
(d) the `Tracker` with listing turned off (`VIDEO_API_LIST=false`): a GET per job per round;
(e), (f) as (c) and (d) with 100 jobs, but with the creates spread out (one every 0.5 s) rather
    than all at once. The bot wakes the tracker after every create; a wake between rounds only
    starts queued jobs, so polls keep to the interval (as `Tracker._run` does).
(g), (h) polling by learned durations without list, and how soon a completion is noticed with
    list: see benchmarks/bench_schedule.py.

Everything runs in this process against a `SimServer` on a `SimClock`, and time is virtual: each
step moves the clock to the next round, so two minutes take a few seconds. The requests counted are
those the simulator logged: the create, every poll (retrieve or list page) and the final mp4
download, in every row. (The bot's delivery also fetches a thumbnail where the backend has
variants, one more request per job, not counted here.) A job-minute is one job running for one
minute at the API: N jobs of 120 s are 2N job-minutes. Requests per job-minute are given for all
requests and for polls alone (creates and downloads are the same for every way of polling).

Status age: the client records the virtual time of every status it receives for a job (the create's
answer, a retrieve, or the job's entry in a list page). Just before each round, the age of every
active job's latest status is taken; the row gives the largest over the whole run. A job whose
status is never older than one interval has been refreshed in every round. For the tracker the
real (wall) time of its longest round is given too: in production a status can age by one interval
plus that.

The client's requests-per-minute limiter is given no effective limit (it sleeps in real time,
which the virtual clock would never see), so the counts are what each way of polling asks for;
each row says whether its peak minute fits the bot's default limit, beyond which the real bot
would stall its rounds, creates and downloads alike, behind the limiter. Where one tracker round's
polls alone would take longer than the interval at that limit, the row says how long: that, not
the interval, is then how old a status can get.

A poller per job is independent of the others, so its requests per job do not depend on how many
jobs run: where running it for every job would take too long here, its row is computed from the
same poller measured with fewer jobs, and says so.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from benchmarks.bench_schedule import schedule_rows, sent_job
from benchmarks.common import Row, verdict
from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.models import CreateVideo, ListOrder, Phase, ReferenceImage, Video, VideoList
from bot.api.profiles import Capabilities, capabilities
from bot.api.ratelimit import MinuteRateLimiter
from bot.queueview import Outlook
from bot.settings import Settings
from bot.sim import SimClock, SimConfig, SimServer
from bot.store import Job, Store
from bot.tracker import Tracker

JOB_SECONDS = 120.0
# Every job has the same prompt and size, so the simulator renders one clip for all of them.
REQUEST = CreateVideo(prompt="bench polling", model="sora-2", seconds="4", size="1280x720")
MAX_STEPS = 1000
# (e) and (f): the same jobs created one by one over the first 50 s instead of all at once.
SPREAD_GAP = 0.5
WINDOW = 60.0
TRACKER_INTERVAL = 10.0
# Target: at 1000 jobs the tracker makes at least 10x fewer requests than a poller per job at 10 s.
TARGET_JOBS = 1000
TARGET_RATIO = 10.0


def bot_rate_limit() -> int:
    """The bot's default requests-per-minute limit (OPENAI_REQUESTS_PER_MINUTE)."""
    default = Settings.model_fields["openai_requests_per_minute"].default
    return int(default)


def default_interval() -> float:
    default = Settings.model_fields["poll_interval_seconds"].default
    return float(default)


@dataclass
class Tally:
    """Requests the simulator saw, by kind, and how many at each virtual time."""

    jobs: int
    kinds: Counter[str] = field(default_factory=Counter)
    steps: list[tuple[float, int, int]] = field(default_factory=list)
    max_age: float = 0.0
    rounds: int = 0
    longest_round: float = 0.0
    wall: float = 0.0

    @property
    def job_minutes(self) -> float:
        return self.jobs * JOB_SECONDS / 60

    def per_job(self, kind: str | None = None) -> float:
        total = sum(self.kinds.values()) if kind is None else self.kinds[kind]
        return total / self.jobs

    def per_job_minute(self, kind: str | None = None) -> float:
        total = sum(self.kinds.values()) if kind is None else self.kinds[kind]
        return total / self.job_minutes

    def peak_per_minute(self, *, polls_only: bool = False) -> int:
        """Most requests in any 60 s window starting at a step."""
        counts = [(at, polls if polls_only else total) for at, total, polls in self.steps]
        return max(
            sum(n for at, n in counts if start <= at < start + WINDOW) for start, _ in counts
        )


def _kind(route: str | None) -> str:
    if route == "POST /videos":
        return "create"
    if route == "GET /videos/{id}/content":
        return "download"
    return "poll"


class StampingClient(VideosClient):
    """The bot's client, noting the virtual time of every job status it receives."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ClientConfig,
        *,
        limiter: MinuteRateLimiter,
        clock: SimClock,
    ) -> None:
        super().__init__(http, config, limiter=limiter)
        self.clock = clock
        self.seen: dict[str, float] = {}

    async def create(self, request: CreateVideo, reference: ReferenceImage | None = None) -> Video:
        video = await super().create(request, reference)
        self.seen[video.id] = self.clock.now()
        return video

    async def retrieve(self, video_id: str, *, retries: int | None = None) -> Video:
        video = await super().retrieve(video_id, retries=retries)
        self.seen[video.id] = self.clock.now()
        return video

    async def list(
        self, *, after: str | None = None, limit: int | None = None, order: ListOrder | None = None
    ) -> VideoList:
        page = await super().list(after=after, limit=limit, order=order)
        now = self.clock.now()
        for video in page.data:
            self.seen[video.id] = now
        return page


class Rig:
    """A simulator on a virtual clock, and a client for it."""

    def __init__(self, cache_dir: Path, caps: Capabilities, jobs: int) -> None:
        # A whole-second start keeps `start + n * interval` exact, so a job is done at 120 s sharp.
        self.clock = SimClock(start=float(int(time.time())))
        self.sim = SimServer(
            SimConfig(job_seconds=JOB_SECONDS, cache_dir=cache_dir, seed=1), clock=self.clock.now
        )
        self.caps = caps
        self.jobs = jobs
        self.tally = Tally(jobs)
        self.started = self.clock.now()
        self.workdir = cache_dir.parent / "downloads"
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=5.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        self.client: StampingClient

    async def __aenter__(self) -> Rig:
        url = await self.sim.start()
        config = ClientConfig(base_url=url, api_key=SecretStr("bench"), capabilities=self.caps)
        # The client's limiter sleeps in real time, which a virtual clock never catches up with:
        # give it no effective limit and compare the peak with the bot's limit afterwards.
        limiter = MinuteRateLimiter(10**9, clock=self.clock.now)
        self.client = StampingClient(self.http, config, limiter=limiter, clock=self.clock)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.sim.stop()

    def check_ages(self, active: set[str]) -> None:
        """Before a round: how old the newest status of each active job is."""
        now = self.clock.now()
        for video_id in active:
            age = now - self.client.seen[video_id]
            self.tally.max_age = max(self.tally.max_age, age)
        self.tally.rounds += 1

    def take(self) -> None:
        """Count the requests logged since the last step as made at the clock's time."""
        kinds = Counter(_kind(r.route) for r in self.sim.requests)
        bad = [r for r in self.sim.requests if r.status is None or r.status >= 400]
        if bad:
            raise RuntimeError(f"simulator refused {len(bad)} requests, e.g. {bad[0]}")
        # The log keeps at most 10,000 entries, so it is emptied at every step.
        self.sim.requests.clear()
        self.tally.kinds.update(kinds)
        polls = kinds["poll"]
        self.tally.steps.append((self.clock.now() - self.started, kinds.total(), polls))

    async def download(self, video_id: str) -> None:
        await self.client.download(video_id, self.workdir / f"{video_id}.mp4")

    async def step(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.sim.settle()


async def naive(rig: Rig, interval: float) -> None:
    """A poller per job, as `create_and_poll` runs one per call, then the download."""
    created = await asyncio.gather(*(rig.client.create(REQUEST) for _ in range(rig.jobs)))
    # The clip renders in a thread while the virtual clock stands still.
    await rig.sim.settle()
    active = {v.id for v in created}
    for _ in range(MAX_STEPS):
        rig.check_ages(active)
        seen: list[Video] = await asyncio.gather(*(rig.client.retrieve(i) for i in active))
        done = [v for v in seen if v.phase is not Phase.RUNNING]
        if any(v.phase is Phase.FAILED for v in done):
            raise RuntimeError("a simulated job failed")
        await asyncio.gather(*(rig.download(v.id) for v in done))
        active -= {v.id for v in done}
        rig.take()
        if not active:
            return
        await rig.step(interval)
    raise RuntimeError("the jobs never finished")


class Finished:
    """The tracker's listener: keeps the jobs that finished, for their download."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        return None

    async def job_finished(self, job: Job) -> None:
        self.jobs.append(job)


async def tracked(rig: Rig, dbdir: Path, gap: float = 0.0) -> None:
    """Jobs created as the bot's submit path does and followed by one Tracker.

    With `gap` 0 every job is created at t = 0; otherwise one every `gap` seconds. The bot wakes
    the tracker after each create; as in `Tracker._run`, a wake polls only once `next_delay()` has
    passed since the last poll (the first create finds no earlier poll, so a round runs at once).
    """
    store = await Store.open(dbdir / "bot.sqlite3", clock=rig.clock.now, synchronous="NORMAL")
    try:
        finished = Finished()
        tracker = Tracker(
            store, rig.client, finished, interval=TRACKER_INTERVAL, clock=rig.clock.now
        )

        async def submit(n: int) -> None:
            job, video = await sent_job(store, rig.client, REQUEST, 1000 + n, rig.clock.now)
            await store.attach_video(job.id, video.id, video.status, video.progress)

        sent = 0
        create_at = 0.0
        last_poll = -math.inf
        for _ in range(MAX_STEPS):
            elapsed = rig.clock.now() - rig.started
            if sent < rig.jobs and create_at <= elapsed:
                batch = rig.jobs if gap <= 0 else 1
                await asyncio.gather(*(submit(sent + i) for i in range(batch)))
                sent += batch
                create_at += gap
                # The clip renders in a thread while the virtual clock stands still.
                await rig.sim.settle()
            if elapsed - last_poll >= tracker.next_delay():
                last_poll = elapsed
                active = {j.api_video_id for j in await store.active_jobs() if j.api_video_id}
                rig.check_ages(active)
                began = time.perf_counter()
                await tracker.poll_once()
                rig.tally.longest_round = max(rig.tally.longest_round, time.perf_counter() - began)
                done, finished.jobs = finished.jobs, []
                if any(j.state != "succeeded" for j in done):
                    raise RuntimeError("a tracked job did not succeed")
                await asyncio.gather(*(rig.download(j.api_video_id or "") for j in done))
            rig.take()
            if sent == rig.jobs and not await store.active_jobs():
                return
            due = last_poll + tracker.next_delay()
            if sent < rig.jobs:
                due = min(due, create_at)
            await rig.step(due - elapsed)
        raise RuntimeError("the jobs never finished")
    finally:
        await store.close()


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    jobs: int
    interval: float
    caps: Capabilities
    drive: Callable[[Rig, Path], Awaitable[object]]
    # For a poller per job too slow to run with `jobs` pollers: measure with this many instead.
    measured_jobs: int | None = None

    @property
    def kind(self) -> str:
        """Scenarios of one kind differ only in their number of jobs."""
        return self.key.strip("()")


def scenarios(quick: bool) -> list[Scenario]:
    openai = capabilities("openai")
    no_list = capabilities("openai", {"list": False})
    every = TRACKER_INTERVAL

    async def naive_1s(rig: Rig, _: Path) -> None:
        await naive(rig, 1.0)

    async def naive_10s(rig: Rig, _: Path) -> None:
        await naive(rig, 10.0)

    async def spread(rig: Rig, dbdir: Path) -> None:
        await tracked(rig, dbdir, SPREAD_GAP)

    out: list[Scenario] = []
    for n in (1, 100, 1000):
        # A poller per job makes 15 (10 s) or 123 (1 s) requests a job whatever the number of
        # jobs: 1000 of them would take minutes here, so the big counts are computed.
        most_1s = 1 if quick else 100
        out += [
            Scenario("(a)", "poller per job, 1 s (SDK create_and_poll)", n, 1.0, openai,
                     naive_1s, None if n <= most_1s else most_1s),
            Scenario("(b)", "poller per job, 10 s", n, 10.0, openai,
                     naive_10s, None if n <= 100 else 100),
            Scenario("(c)", f"Tracker, {every:g} s, list batching (openai)", n, every, openai,
                     tracked),
        ]  # fmt: skip
        if n < 1000 or not quick:
            out.append(
                Scenario("(d)", f"Tracker, {every:g} s, no list (GET per job)", n, every,
                         no_list, tracked)
            )  # fmt: skip
    out += [
        Scenario("(e)", f"as (c), a create every {SPREAD_GAP:g} s", 100, every, openai, spread),
        Scenario("(f)", f"as (d), a create every {SPREAD_GAP:g} s", 100, every, no_list, spread),
    ]
    return out


async def measure(scenario: Scenario, workdir: Path) -> Tally:
    jobs = scenario.measured_jobs or scenario.jobs
    dbdir = workdir / f"{scenario.kind}-{jobs}"
    if dbdir.exists():
        raise RuntimeError(f"measured twice: {scenario}")
    dbdir.mkdir()
    started = time.perf_counter()
    async with Rig(workdir / "sim-cache", scenario.caps, jobs) as rig:
        rig.workdir = dbdir
        await scenario.drive(rig, dbdir)
        rig.tally.wall = time.perf_counter() - started
        return rig.tally


def row(scenario: Scenario, tally: Tally, limit: int) -> Row:
    n = scenario.jobs
    scale = n / tally.jobs
    peak = round(tally.peak_per_minute() * scale)
    polls_peak = round(tally.peak_per_minute(polls_only=True) * scale)
    fits = "within" if peak <= limit else "over"
    age_ok = tally.max_age <= scenario.interval + 1e-9
    source = (
        f"computed from {tally.jobs} pollers (each independent)"
        if tally.jobs != n
        else f"{tally.wall:.1f} s to run"
    )
    tracker = tally.longest_round > 0
    longest = f"; its longest round took {tally.longest_round * 1000:.0f} ms" if tracker else ""
    # Virtual time hides the limiter: at the bot's default limit, one round's polls alone take
    # this long, and a status can be no fresher than that.
    round_polls = max(polls for _, _, polls in tally.steps)
    at_limit = round_polls * 60 / limit
    if tracker and at_limit > scenario.interval:
        longest += (
            f"; at the default {limit}/min a round of {round_polls} polls alone takes "
            f"{at_limit:.0f} s, so in production statuses would age that long"
        )
    return Row(
        f"polling, {n} job{'s' if n > 1 else ''}: {scenario.key} {scenario.name}",
        f"{tally.per_job_minute():.2f} req/job-min (polls {tally.per_job_minute('poll'):.2f})",
        f"per job: create {tally.per_job('create'):.0f} + polls {tally.per_job('poll'):.2f} + "
        f"download {tally.per_job('download'):.0f}; peak {peak}/min ({polls_peak}/min polls "
        f"alone), {fits} the bot's default {limit}/min; oldest status {tally.max_age:g} s "
        f"over {tally.rounds} rounds "
        f"({'within' if age_ok else 'OVER'} the {scenario.interval:g} s interval){longest}; "
        f"{source}",
        f"Video API requests per job-minute, {n} concurrent {JOB_SECONDS:.0f} s "
        f"job{'s' if n > 1 else ''} on a virtual clock: {scenario.name}",
    )


def comparison(results: list[tuple[Scenario, Tally]]) -> list[Row]:
    """The target: the tracker against a poller per job at 10 s, at `TARGET_JOBS` jobs."""
    by_key = {(s.kind, s.jobs): t for s, t in results}
    tracker = by_key.get(("c", TARGET_JOBS))
    naive = by_key.get(("b", TARGET_JOBS))
    if tracker is None or naive is None:
        return []
    ratio = naive.per_job_minute() / tracker.per_job_minute()
    polls = naive.per_job_minute("poll") / tracker.per_job_minute("poll")
    # Creates and downloads are the same for every way of polling: with jobs of JOB_SECONDS
    # they alone cap the ratio of all requests, however few polls a poller makes.
    fixed = (
        (naive.per_job("create") + naive.per_job("download")) / tracker.job_minutes * tracker.jobs
    )
    cap = naive.per_job_minute() / fixed
    fresh = tracker.max_age <= TRACKER_INTERVAL
    return [
        Row(
            f"polling, {TARGET_JOBS} jobs: (b) / (c), the tracker against a poller per job at 10 s",
            f"{polls:.0f}x fewer polls ({ratio:.1f}x fewer requests in all)",
            f"target >= {TARGET_RATIO:g}x fewer with no status older than one interval: "
            f"{verdict(polls >= TARGET_RATIO and fresh)} on polls (oldest status "
            f"{tracker.max_age:g} s); counting creates and downloads too, no poller can do better "
            f"than {cap:.1f}x with {JOB_SECONDS:.0f} s jobs, so that ratio "
            f"{'meets' if ratio >= TARGET_RATIO else 'cannot meet'} it",
            "requests per job-minute of (b) divided by those of (c), at "
            f"{TARGET_JOBS} concurrent jobs: polls alone, and everything",
        )
    ]


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    limit = bot_rate_limit()
    if default_interval() != TRACKER_INTERVAL:
        raise RuntimeError("the Tracker's default interval changed: update TRACKER_INTERVAL")
    measured: dict[tuple[str, int], Tally] = {}
    results: list[tuple[Scenario, Tally]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for scenario in scenarios(quick):
            jobs = scenario.measured_jobs or scenario.jobs
            tally = measured.get((scenario.kind, jobs))
            if tally is None:
                tally = asyncio.run(measure(scenario, work))
                measured[(scenario.kind, jobs)] = tally
            results.append((scenario, tally))
            rows.append(row(scenario, tally, limit))
    return rows + comparison(results) + schedule_rows(quick)
