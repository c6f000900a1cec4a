"""The bot's memory: RSS per active job, and peak RSS while it delivers a 100 MB video.

Both run the real bot in its own process (`benchmarks.botproc`), so the RSS read from
/proc/<pid>/status is the bot's alone: the fake Discord, the simulator and the loopback API live
elsewhere.

Per active job: members run /video against a simulator whose jobs take ten hours, so every job
stays active in the store, in the tracker's rounds and in the Discord adapter. A first few jobs
warm every code path; then the RSS (after a full garbage collection in the bot) with those few is
compared with the RSS once `JOBS` are active and the tracker has refreshed them all a few times:
the difference over the added jobs. The second reading waits until the bot has also handed the
pages its bursts freed back to the system (it does so at most every 10 s, see bot/memory.py):
the figure is what the jobs hold, not the height of the bursts that made them. Python's
allocated-blocks count is given alongside, since RSS alone can hide or exaggerate what the jobs
hold.

100 MB delivery: the loopback API completes jobs at once and serves a body of the size the prompt
names; the interaction allows uploads of 200 MB, so nothing is re-encoded. After one 1 MB delivery
(warm), the idle RSS is read, the kernel's peak-RSS mark is reset (/proc/<pid>/clear_refs), and a
thread samples the bot's RSS every 2 ms while it downloads the 100 MB body and uploads it to the
fake Discord. The peak is the larger of the sampled maximum and the kernel's mark.

Targets: under 20 KB per active job; peak within 40 MB of idle while delivering 100 MB.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.bench_client import server
from benchmarks.common import PeakSampler, Row, mb, proc_status, reset_peak, verdict
from benchmarks.harness import all_shown, bot_process, slash_burst, stage
from bot.memory import DEFAULT_INTERVAL as RELEASE_INTERVAL
from tests.fakediscord import Interaction

JOBS = 1000
QUICK_JOBS = 300
WARM = 10
BATCH = 110
USERS = 12
INTERVAL = 2.0
PER_JOB_TARGET = 20 * 1024
BIG = 100 * 1024 * 1024
BIG_LIMIT = 200 * 1024 * 1024
PEAK_TARGET = 40 * 1024 * 1024


async def per_job(work: Path, jobs: int) -> Row:
    where = work / "per-job"
    where.mkdir()
    started = time.perf_counter()
    async with (
        stage(where, users=USERS, job_seconds=36_000.0, cache_dir=work / "sim-cache") as w,
        bot_process(w, poll_interval_seconds=INTERVAL) as bot,
    ):
        warm = await slash_burst(w, WARM, "warm up")
        await all_shown(w, warm, timeout=60)
        await asyncio.sleep(2 * INTERVAL)
        base = await bot.stats()
        added = 0
        while added < jobs - WARM:
            batch = await slash_burst(w, min(BATCH, jobs - WARM - added), "a jar of fireflies")
            await all_shown(w, batch, timeout=120)
            added += len(batch)
        # Let the tracker refresh every job a few times (and the progress edits settle), and
        # the bot hand what the bursts freed back to the system, as it does every
        # RELEASE_INTERVAL at the start of a round (bot/memory.py).
        await asyncio.sleep(max(3 * INTERVAL, RELEASE_INTERVAL + 2 * INTERVAL))
        loaded = await bot.stats()
        db = sum(p.stat().st_size for p in w.data_dir.glob("bot.sqlite3*"))
    took = time.perf_counter() - started
    if loaded["active"] != jobs:
        raise RuntimeError(f"expected {jobs} active jobs, the bot has {loaded['active']}")
    per = (loaded["rss"] - base["rss"]) / added
    blocks = (loaded["blocks"] - base["blocks"]) / added
    return Row(
        f"RSS per active job ({jobs} vs {WARM} active)",
        f"{per / 1024:.1f} KB",
        f"bot RSS {mb(base['rss'])} -> {mb(loaded['rss'])} (peak {mb(loaded['hwm'])}); "
        f"+{blocks:.0f} Python blocks/job; database {mb(db)}; "
        f"asyncio tasks {base['tasks']} -> {loaded['tasks']}; {took:.0f} s to run; "
        f"target < {PER_JOB_TARGET // 1024} KB: {verdict(per < PER_JOB_TARGET)}",
        f"(bot process RSS with {jobs} active jobs - with {WARM}) / {added}, each RSS read after "
        f"gc in the bot, tracker polling every {INTERVAL:g} s",
    )


def delivered(interaction: Interaction) -> bool:
    original = interaction.original
    return original is not None and any(a.filename.endswith(".mp4") for a in original.attachments)


async def big_delivery(work: Path) -> Row:
    where = work / "big"
    where.mkdir()
    with server(1024 * 1024) as url:
        async with (
            stage(where, users=1) as w,
            bot_process(
                w, openai_base_url=url, poll_interval_seconds=1.0, video_api_variants=False
            ) as bot,
        ):
            warm = await slash_burst(w, 1, "bytes=1048576", attachment_size_limit=BIG_LIMIT)
            await w.fake.wait_for(lambda: delivered(warm[0]), timeout=60)
            await asyncio.sleep(0.5)
            idle = (await bot.stats())["rss"]
            exact = reset_peak(bot.pid)
            started = time.perf_counter()
            with PeakSampler(bot.pid) as sampler:
                big = await slash_burst(w, 1, f"bytes={BIG}", attachment_size_limit=BIG_LIMIT)
                await w.fake.wait_for(lambda: delivered(big[0]), timeout=180, poll=0.1)
            took = time.perf_counter() - started
            hwm = proc_status(bot.pid)["VmHWM"] if exact else 0
            original = big[0].original
            assert original is not None
            size = max(a.size for a in original.attachments)
    if size != BIG:
        raise RuntimeError(f"the fake received {size} bytes, not {BIG}")
    peak = max(sampler.peak, hwm)
    over = peak - idle
    mark = "kernel peak mark" if exact else "sampling only"
    return Row(
        "peak RSS over idle, delivering a 100 MB video",
        f"{mb(over)} (idle {mb(idle)})",
        f"download from the API + upload to Discord in {took:.1f} s; {mark}, "
        f"{sampler.samples} samples; target < {PEAK_TARGET // 1_048_576} MB: "
        f"{verdict(over < PEAK_TARGET)}",
        "bot process peak RSS - idle RSS while one job's 100 MB mp4 is downloaded and posted "
        "(upload limit raised: no re-encode)",
    )


async def measure(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        return [await per_job(work, QUICK_JOBS if quick else JOBS), await big_delivery(work)]


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(measure(quick))
