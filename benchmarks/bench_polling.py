"""Video API requests per job while 100 two-minute jobs run at once, for several ways of polling.

(a) a poller per job every 1 s: what the official SDK's `create_and_poll` does by default
    (a retrieve right after the create, then one per second until the job is done);
(b) the same poller every 10 s;
(c) the bot's `Tracker` at its default interval, where the backend can list (openai profile):
    one list request refreshes up to 100 jobs;
(d) the `Tracker` with listing turned off (`VIDEO_API_LIST=false`): a GET per job per round;
(e), (f) as (c) and (d), but with the creates spread out (one every 0.5 s) rather than all at
    once: the bot wakes the tracker after every create, and each wake is a full round.

Everything runs in this process against a `SimServer` on a `SimClock`, and time is virtual: each
step moves the clock by one interval and runs one round, so two minutes take a few seconds. The
requests counted are those the simulator logged: the create, every poll (retrieve or list page)
and the final mp4 download, in every row. (The bot's delivery also fetches a thumbnail where the
backend has variants, one more request per job, not counted here.) In (a) to (d) all jobs are
created at t = 0; the Tracker's first round runs then too, as the bot wakes it after each create.

The client's requests-per-minute limiter is given no effective limit (it sleeps in real time,
which the virtual clock would never see), so the counts are what each way of polling asks for;
each row says whether its peak minute fits the bot's default limit, beyond which the real bot
would stall its rounds, creates and downloads alike, behind the limiter.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from bot.api.client import ClientConfig, VideosClient
from bot.api.models import CreateVideo, Phase, Video
from bot.api.profiles import Capabilities, capabilities
from bot.api.ratelimit import MinuteRateLimiter
from bot.settings import Settings
from bot.sim import SimClock, SimConfig, SimServer
from bot.store import Job, NewJob, Store
from bot.tracker import Tracker

JOBS = 100
JOB_SECONDS = 120.0
# Every job has the same prompt and size, so the simulator renders one clip for all of them.
REQUEST = CreateVideo(prompt="bench polling", model="sora-2", seconds="4", size="1280x720")
MAX_STEPS = 1000
# (e) and (f): the same jobs created one by one over the first 50 s instead of all at once.
SPREAD_GAP = 0.5
WINDOW = 60.0


def bot_rate_limit() -> int:
    """The bot's default requests-per-minute limit (OPENAI_REQUESTS_PER_MINUTE)."""
    default = Settings.model_fields["openai_requests_per_minute"].default
    return int(default)


@dataclass
class Tally:
    """Requests the simulator saw, by kind, and how many at each virtual time."""

    kinds: Counter[str] = field(default_factory=Counter)
    steps: list[tuple[float, int, int]] = field(default_factory=list)

    def per_job(self, kind: str | None = None) -> float:
        total = sum(self.kinds.values()) if kind is None else self.kinds[kind]
        return total / JOBS

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


class Rig:
    """A simulator on a virtual clock, and a client for it."""

    def __init__(self, cache_dir: Path, caps: Capabilities) -> None:
        # A whole-second start keeps `start + n * interval` exact, so a job is done at 120 s sharp.
        self.clock = SimClock(start=float(int(time.time())))
        self.sim = SimServer(
            SimConfig(job_seconds=JOB_SECONDS, cache_dir=cache_dir, seed=1), clock=self.clock.now
        )
        self.caps = caps
        self.tally = Tally()
        self.started = self.clock.now()
        self.workdir = cache_dir.parent / "downloads"
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        self.client: VideosClient

    async def __aenter__(self) -> Rig:
        url = await self.sim.start()
        config = ClientConfig(base_url=url, api_key=SecretStr("bench"), capabilities=self.caps)
        # The client's limiter sleeps in real time, which a virtual clock never catches up with:
        # give it no effective limit and compare the peak with the bot's limit afterwards.
        limiter = MinuteRateLimiter(10**9, clock=self.clock.now)
        self.client = VideosClient(self.http, config, limiter=limiter)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.sim.stop()

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
    created = await asyncio.gather(*(rig.client.create(REQUEST) for _ in range(JOBS)))
    # The clip renders in a thread while the virtual clock stands still.
    await rig.sim.settle()
    active = {v.id for v in created}
    for _ in range(MAX_STEPS):
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

    async def job_changed(self, job: Job) -> None:
        return None

    async def job_finished(self, job: Job) -> None:
        self.jobs.append(job)


async def tracked(rig: Rig, dbdir: Path, gap: float = 0.0) -> None:
    """Jobs created as the bot's submit path does and followed by one Tracker.

    With `gap` 0 every job is created at t = 0; otherwise one every `gap` seconds. After each
    create the bot wakes the tracker, so a round runs at once; and as the tracker's wait starts
    again after every round, its next regular round is `next_delay()` after the last one.
    """
    store = await Store.open(dbdir / "bot.sqlite3", clock=rig.clock.now, synchronous="NORMAL")
    try:
        finished = Finished()
        tracker = Tracker(store, rig.client, finished, clock=rig.clock.now)

        async def submit(n: int) -> None:
            new = NewJob(
                user_id=1000 + n,
                channel_id=10,
                prompt=REQUEST.prompt,
                model=REQUEST.model or "sora-2",
                seconds=REQUEST.seconds or "4",
                size=REQUEST.size or "1280x720",
                cost_micros=400_000,
            )
            job = await store.insert_job(new)
            await store.mark_create_attempted(job.id, rig.clock.now())
            video = await rig.client.create(REQUEST)
            await store.attach_video(job.id, video.id, video.status, video.progress)

        sent = 0
        create_at = 0.0
        for _ in range(MAX_STEPS):
            elapsed = rig.clock.now() - rig.started
            if sent < JOBS and create_at <= elapsed:
                batch = JOBS if gap <= 0 else 1
                await asyncio.gather(*(submit(sent + i) for i in range(batch)))
                sent += batch
                create_at += gap
                # The clip renders in a thread while the virtual clock stands still.
                await rig.sim.settle()
            await tracker.poll_once()
            done, finished.jobs = finished.jobs, []
            if any(j.state != "succeeded" for j in done):
                raise RuntimeError("a tracked job did not succeed")
            await asyncio.gather(*(rig.download(j.api_video_id or "") for j in done))
            rig.take()
            if sent == JOBS and not await store.active_jobs():
                return
            due = elapsed + tracker.next_delay()
            if sent < JOBS:
                due = min(due, create_at)
            await rig.step(due - elapsed)
        raise RuntimeError("the jobs never finished")
    finally:
        await store.close()


@dataclass(frozen=True)
class Scenario:
    name: str
    caps: Capabilities
    drive: Callable[[Rig, Path], Awaitable[object]]


def scenarios() -> list[Scenario]:
    openai = capabilities("openai")
    no_list = capabilities("openai", {"list": False})

    async def naive_1s(rig: Rig, _: Path) -> None:
        await naive(rig, 1.0)

    async def naive_10s(rig: Rig, _: Path) -> None:
        await naive(rig, 10.0)

    async def spread(rig: Rig, dbdir: Path) -> None:
        await tracked(rig, dbdir, SPREAD_GAP)

    return [
        Scenario("(a) poller per job, 1 s (SDK create_and_poll)", openai, naive_1s),
        Scenario("(b) poller per job, 10 s", openai, naive_10s),
        Scenario("(c) Tracker, 10 s, list batching (openai)", openai, tracked),
        Scenario("(d) Tracker, 10 s, no list (GET per job)", no_list, tracked),
        Scenario(f"(e) as (c), a create every {SPREAD_GAP:g} s", openai, spread),
        Scenario(f"(f) as (d), a create every {SPREAD_GAP:g} s", no_list, spread),
    ]


async def measure(scenario: Scenario, workdir: Path) -> Tally:
    dbdir = workdir / scenario.name[:3].strip("()")
    dbdir.mkdir()
    async with Rig(workdir / "sim-cache", scenario.caps) as rig:
        rig.workdir = dbdir
        await scenario.drive(rig, dbdir)
        return rig.tally


def run() -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    limit = bot_rate_limit()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for scenario in scenarios():
            started = time.perf_counter()
            tally = asyncio.run(measure(scenario, work))
            took = time.perf_counter() - started
            peak = tally.peak_per_minute()
            fits = "within" if peak <= limit else "over"
            rows.append(
                (
                    f"polling: {scenario.name}",
                    f"{tally.per_job():.2f} req/job, peak {peak}/min",
                    f"per job: create {tally.per_job('create'):.0f} + polls "
                    f"{tally.per_job('poll'):.2f} + download {tally.per_job('download'):.0f}; "
                    f"polls alone peak {tally.peak_per_minute(polls_only=True)}/min; "
                    f"peak {fits} the bot's default {limit}/min limit; "
                    f"{JOBS} jobs x {JOB_SECONDS:.0f} s, {took:.1f} s to run",
                )
            )
    return rows
