"""Delay from a job completing at the video API to its mp4 being posted in Discord, with 100 jobs
under way at once, in real time.

The bot runs in its own process (`benchmarks.botproc`); the fake Discord and the simulator run in
this one, so both ends are stamped here: the simulator's `SimVideo.completed_at` (when the job's
time was up and its clip existed) and the snowflake of the mp4 attachment (when the fake stored the
upload). 100 members each run /video at once; every job takes `JOB_SECONDS` at the simulator. Which
video belongs to which job is read from the bot's database after it stops, as is the moment the
bot claimed each delivery, which splits the delay into noticing (polling) and delivering (download
from the API, upload to Discord). The same runs count the requests per job that reached the fake
Discord and the simulator.

`run_long` (`python -m benchmarks discord`, not in the default run) does the same with 100
two-minute jobs at the default 10 s interval, which takes two and a half minutes of real time: the
Discord requests per job of jobs long enough to show progress edits.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import Row, ms, percentile
from benchmarks.harness import bot_process, slash_burst, stage
from tests.e2e import World
from tests.fakediscord import Interaction, snowflake_time

JOBS = 100
JOB_SECONDS = 5.0
LONG_JOB_SECONDS = 120.0
INTERVALS = (1.0, 10.0)
QUICK_INTERVALS = (1.0,)
USERS = 10
PROMPT = "a lighthouse at dusk"
VIDEO_NAME = re.compile(r"video-(\d+)\.mp4")


@dataclass
class Delays:
    total: list[float]
    noticed: list[float]
    delivering: list[float]
    took: float
    # Requests per kind that the fake Discord and the simulator answered during the run.
    discord: Counter[str] = field(default_factory=Counter)
    api: Counter[str] = field(default_factory=Counter)


def discord_kind(route: str) -> str:
    if route.endswith("/callback"):
        return "ack"
    if route.startswith("PATCH /webhooks/"):
        return "reply edits"
    if route.startswith("POST /webhooks/"):
        return "followups"
    if route.startswith("CDN"):
        return "CDN"
    if route == "POST /channels/{channel_id}/messages":
        return "channel messages"
    return route


def api_kind(route: str | None) -> str:
    return {
        "POST /videos": "create",
        "GET /videos": "list",
        "GET /videos/{id}": "retrieve",
        "GET /videos/{id}/content": "download",
    }.get(route or "", route or "?")


def per_job(counts: Counter[str], jobs: int) -> str:
    total = sum(counts.values()) / jobs
    parts = ", ".join(f"{kind} {n / jobs:.2f}" for kind, n in counts.most_common())
    return f"{total:.2f} ({parts})"


def posted_at(interaction: Interaction) -> tuple[int, float] | None:
    """(job id, when the fake stored its mp4) if the reply carries the video."""
    original = interaction.original
    if original is None:
        return None
    for attachment in original.attachments:
        found = VIDEO_NAME.fullmatch(attachment.filename)
        if found:
            return int(found.group(1)), snowflake_time(attachment.id)
    return None


def job_rows(db: Path) -> dict[int, tuple[str, float]]:
    """Job id -> (video id, when its delivery was claimed), from the bot's database."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT id, api_video_id, delivery_claimed_at FROM jobs WHERE api_video_id IS NOT NULL"
        ).fetchall()
    return {int(i): (str(v), float(c or 0.0)) for i, v, c in rows}


async def one_run(w: World, interval: float, job_seconds: float) -> Delays:
    started = time.perf_counter()
    async with bot_process(w, poll_interval_seconds=interval):
        first = len(w.fake.requests)
        w.sim.requests.clear()
        burst = await slash_burst(w, JOBS, PROMPT)
        await w.fake.wait_for(
            lambda: all(posted_at(i) is not None for i in burst),
            timeout=job_seconds + 4 * interval + 60,
            poll=0.2,
        )
        # Whatever the bot still sends for these jobs (a last edit) lands in the count too.
        await asyncio.sleep(1.0)
        discord = Counter(discord_kind(r.key) for r in w.fake.requests[first:])
        api = Counter(api_kind(r.route) for r in w.sim.requests)
    took = time.perf_counter() - started
    rows = job_rows(w.data_dir / "bot.sqlite3")
    delays = Delays([], [], [], took, discord, api)
    for interaction in burst:
        found = posted_at(interaction)
        assert found is not None
        job_id, posted = found
        video_id, claimed = rows[job_id]
        completed = w.sim.videos[video_id].completed_at
        assert completed is not None
        delays.total.append(posted - completed)
        delays.noticed.append(claimed - completed)
        delays.delivering.append(posted - claimed)
    return delays


def _p(values: list[float]) -> str:
    return f"median {ms(statistics.median(values))}, p99 {ms(percentile(values, 0.99))}"


async def measure(intervals: tuple[float, ...], job_seconds: float) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for interval in intervals:
            where = work / f"every-{interval:g}s"
            where.mkdir()
            async with stage(
                where, users=USERS, job_seconds=job_seconds, cache_dir=work / "sim-cache"
            ) as w:
                d = await one_run(w, interval, job_seconds)
            rows.append(
                Row(
                    f"completed -> mp4 posted, {JOBS} {job_seconds:g} s jobs, poll every "
                    f"{interval:g} s",
                    _p(d.total),
                    f"max {ms(max(d.total))}; noticed (completed -> delivery claimed) "
                    f"{_p(d.noticed)}; delivering (claimed -> posted) {_p(d.delivering)}; "
                    f"{d.took:.1f} s in all",
                    f"a job completing at the simulator -> its mp4 stored by the fake Discord, "
                    f"{JOBS} /video at once, POLL_INTERVAL_SECONDS={interval:g}, real time",
                )
            )
            rows.append(
                Row(
                    f"requests per job, {JOBS} {job_seconds:g} s jobs, poll every {interval:g} s",
                    f"Discord {sum(d.discord.values()) / JOBS:.2f}, video API "
                    f"{sum(d.api.values()) / JOBS:.2f}",
                    f"Discord {per_job(d.discord, JOBS)}; video API {per_job(d.api, JOBS)}",
                    f"requests the fake Discord and the simulator answered from the first /video "
                    f"until every mp4 was posted (+1 s), over {JOBS}, in the same run",
                )
            )
    return rows


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(measure(QUICK_INTERVALS if quick else INTERVALS, JOB_SECONDS))


def run_long(quick: bool = False) -> list[Row]:
    """100 two-minute jobs at the default interval, in real time (about two and a half minutes:
    not part of the default run)."""
    return asyncio.run(measure((10.0,), LONG_JOB_SECONDS))
