"""How much one tracker round slows down when a tenth of the jobs are odd: a round over 1000
running jobs of which 100 are odd, against a round over 1000 healthy ones. Target: at most twice.

The server is the hostile video server of the tests (`python -m tests.hostile`: the simulator with
a reverse proxy in front), in a process of its own so its work is not done on the tracker's event
loop. Jobs are created through it, so the odd ones carry their behaviour from the prompt; each
case gets a fresh server, so both list the same number of videos. Jobs take an hour at the
simulator, so every one stays running while the rounds are measured.

The odd jobs are ten each of the behaviours that leave a job unreadable but alive: a 403, a 302
and an HTML page on its GET, nginx's HTML 502 and a 600 MB 500 body (both retried as 5xx are), an
infinite progress, an unknown status, and three kinds of list item the client cannot use (no id,
not an object, a field of the wrong type), which send the tracker to the job's own GET.

The client is configured as the bot configures it from default settings (retries, timeouts,
back-off), except that its requests-per-minute limit is lifted: at the default 120/min a round of
1000 jobs is paced by the limiter, not by the tracker. Rounds run back to back; each case reports
its first round (every job read for the first time), the median and the slowest. The target is
judged on the slowest round of each case: a healthy job's news waits for the round it is read in,
so the slowest round is how stale it can get.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from benchmarks.common import Row, ms, verdict
from bot.api.client import VideosClient
from bot.api.config import make_http_client
from bot.api.models import CreateVideo
from bot.api.ratelimit import MinuteRateLimiter
from bot.backend import client_config
from bot.queueview import Outlook
from bot.settings import Settings
from bot.store import Job, NewJob, Store
from bot.tracker import Tracker

ROOT = Path(__file__).resolve().parent.parent
JOBS = 1000
ODD = 100
ODD_BEHAVIOURS = (
    "forbidden",
    "redirect",
    "html",
    "html-502",
    "huge-error-body",
    "progress-inf",
    "unknown-status",
    "list-item-no-id",
    "list-item-wrong-type",
    "list-item-bad-field",
)
ROUNDS = 8
QUICK_ROUNDS = 4
# Rounds stop being measured once this much time has gone into them (a round that takes minutes
# has answered the question).
ROUND_BUDGET_SECONDS = 180.0
TARGET_RATIO = 2.0
CREATE_CONCURRENCY = 20
API_KEY = "sk-bench-odd-jobs"


@contextmanager
def hostile_server(cache_dir: Path) -> Iterator[str]:
    """`python -m tests.hostile` on a free loopback port; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
    command = [
        sys.executable,
        "-m",
        "tests.hostile",
        "--job-seconds",
        "3600",
        "--cache-dir",
        str(cache_dir),
    ]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=env
        )
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url.startswith("http://"):
                proc.wait(timeout=10)
                log.seek(0)
                raise RuntimeError(f"the hostile server did not start: {log.read()[-2000:]}")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class Quiet:
    """The tracker's listener: nothing to show."""

    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        return None

    async def job_finished(self, job: Job) -> None:
        return None


@dataclass
class Rounds:
    seconds: list[float]
    requests: list[int]
    # Jobs still running after the rounds (none may be lost or ended by a round).
    running: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def slowest(self) -> float:
        return max(self.seconds)


def prompts(odd: int) -> list[str]:
    """`JOBS` prompts, `odd` of them marked with a behaviour, spread through the list."""
    step = JOBS // odd if odd else JOBS + 1
    out: list[str] = []
    for i in range(JOBS):
        if odd and i % step == 0 and i // step < odd:
            name = ODD_BEHAVIOURS[(i // step) % len(ODD_BEHAVIOURS)]
            out.append(f"bench odd job hostile:{name}")
        else:
            out.append("bench healthy job")
    return out


async def measure(url: str, workdir: Path, odd: int, rounds: int) -> Rounds:
    values: dict[str, Any] = {
        "openai_base_url": url,
        "openai_api_key": SecretStr(API_KEY),
        "video_api_profile": "openai",
    }
    # `_env_file=None`: a developer's .env must not change what is measured.
    settings = Settings(_env_file=None, **values)
    count = 0

    async def counted(request: httpx.Request) -> None:
        nonlocal count
        count += 1

    http = make_http_client(
        settings.openai_timeout_seconds, settings.openai_connect_timeout_seconds
    )
    http.event_hooks = {"request": [counted], "response": []}
    store = await Store.open(workdir / "bot.sqlite3", synchronous="NORMAL")
    try:
        config = client_config(settings, base_url=url, api_key=SecretStr(API_KEY))
        client = VideosClient(http, config, limiter=MinuteRateLimiter(10**9))
        await create_jobs(client, store, prompts(odd))
        tracker = Tracker(store, client, Quiet(), interval=settings.poll_interval_seconds)
        seconds: list[float] = []
        requests: list[int] = []
        spent = 0.0
        while len(seconds) < rounds and spent < ROUND_BUDGET_SECONDS:
            count = 0
            began = time.perf_counter()
            await tracker.poll_once()
            took = time.perf_counter() - began
            spent += took
            seconds.append(took)
            requests.append(count)
        running = sum(1 for j in await store.active_jobs() if j.state == "running")
        return Rounds(seconds, requests, running)
    finally:
        await store.close()
        await http.aclose()


async def create_jobs(client: VideosClient, store: Store, texts: list[str]) -> None:
    """Each job as the bot's submit path leaves it: recorded, sent, running."""
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(n: int, prompt: str) -> None:
        async with gate:
            request = CreateVideo(prompt=prompt, model="sora-2", seconds="4", size="720x1280")
            job = await store.insert_job(
                NewJob(
                    user_id=1000 + n,
                    channel_id=10,
                    prompt=prompt,
                    model="sora-2",
                    seconds="4",
                    size="720x1280",
                    cost_micros=400_000,
                    deadline_at=time.time() + 86_400,
                )
            )
            await store.mark_create_attempted(job.id, time.time())
            video = await client.create(request)
            await store.attach_video(job.id, video.id, video.status, video.progress)

    await asyncio.gather(*(one(n, p) for n, p in enumerate(texts)))


def run_case(odd: int, rounds: int) -> Rounds:
    with tempfile.TemporaryDirectory(prefix="bench-odd-") as tmp:
        work = Path(tmp)
        with hostile_server(work / "sim-cache") as url:
            return asyncio.run(measure(url, work, odd, rounds))


def describe(result: Rounds) -> str:
    shown = "/".join(ms(s) for s in result.seconds)
    requests = "/".join(str(n) for n in result.requests)
    return (
        f"first {ms(result.seconds[0])}, median {ms(result.median)}; {len(result.seconds)} rounds "
        f"back to back ({shown}; requests {requests}); {result.running} of {JOBS} jobs still "
        "running after them"
    )


def run(quick: bool = False) -> list[Row]:
    rounds = QUICK_ROUNDS if quick else ROUNDS
    healthy = run_case(0, rounds)
    odd = run_case(ODD, rounds)
    ratio = odd.slowest / healthy.slowest
    return [
        Row(
            f"odd jobs: tracker round, {JOBS} healthy jobs",
            f"slowest {ms(healthy.slowest)}",
            describe(healthy),
            f"wall time of one Tracker.poll_once over {JOBS} running jobs, all healthy, "
            "against the hostile test server in its own process",
        ),
        Row(
            f"odd jobs: tracker round, {JOBS - ODD} healthy + {ODD} odd",
            f"slowest {ms(odd.slowest)}",
            describe(odd)
            + f"; odd: {ODD // len(ODD_BEHAVIOURS)} each of "
            + ", ".join(ODD_BEHAVIOURS),
            f"the same round with {ODD} of the {JOBS} jobs unreadable in one way or another",
        ),
        Row(
            "odd jobs: slowest round with odd jobs / slowest all-healthy round",
            f"{ratio:.2f}x",
            f"target <= {TARGET_RATIO:g}x: {verdict(ratio <= TARGET_RATIO)}",
            "the second row's slowest round divided by the first's",
        ),
    ]
