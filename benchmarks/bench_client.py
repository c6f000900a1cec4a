"""Client overhead per create + poll + download cycle against the simulator, and peak RSS while
downloading a 200 MB body.

The simulator (`python -m videobot sim --job-seconds 0`) runs in its own process, so the wall
time and CPU time measured here are the client's alone; every job has the same prompt, so the
simulator renders one clip and every cycle downloads that same small mp4.

Target: the download's peak RSS stays within 30 MB of the idle process.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from benchmarks.common import PeakSampler, Row, percentile, rss_bytes
from bot.api.client import VideosClient
from bot.api.config import ClientConfig, make_http_client
from bot.api.models import CreateVideo, Phase

# Sized for about 20 s on a 2-core machine (a cycle takes ~8 ms of wall time there).
CYCLES = 2000
QUICK_CYCLES = 400
WARMUP = 5
POLL_GAP = 0.02
BIG = 200 * 1024 * 1024
RSS_TARGET_MB = 30
SIM_READY = re.compile(r"listening on (\S+)")


@contextmanager
def server(content_bytes: int) -> Iterator[str]:
    """The trivial loopback API (for the big download: the simulator's clips are small)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loopback_api", "--content-bytes", str(content_bytes)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def sim_server(cache_dir: Path, job_seconds: float = 0.0) -> Iterator[str]:
    """`python -m videobot sim` on a free loopback port, no faults, jobs done after
    `job_seconds` (at
    once by default); its base URL."""
    # SIM_* variables would change the simulator's behaviour: the flags below say all of it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
    command = [
        sys.executable,
        "-m",
        "videobot",
        "sim",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--profile",
        "openai",
        "--job-seconds",
        str(job_seconds),
        "--seed",
        "1",
        "--cache-dir",
        str(cache_dir),
    ]
    # It logs every request at INFO on stderr: keep that out of the table, but at hand on failure.
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = SIM_READY.search(line)
            if found is None:
                proc.wait(timeout=10)
                log.seek(0)
                raise RuntimeError(f"the simulator did not start: {line!r}\n{log.read()[-2000:]}")
            yield found.group(1)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@dataclass
class CycleStats:
    wall: list[float]
    cpu: list[float]
    polls: int
    content_bytes: int


async def one_cycle(client: VideosClient, request: CreateVideo, dest: Path) -> tuple[int, int]:
    """Create, poll until completed, download; (polls, bytes downloaded)."""
    created = await client.create(request)
    video = created
    polls = 0
    while video.phase is not Phase.COMPLETED:
        if video.phase is Phase.FAILED:
            raise RuntimeError(f"simulated job {video.id} failed: {video.error}")
        if polls:
            await asyncio.sleep(POLL_GAP)
        video = await client.retrieve(created.id)
        polls += 1
    size = await client.download(created.id, dest)
    return polls, size


async def cycles(url: str, workdir: Path, count: int) -> CycleStats:
    request = CreateVideo(prompt="bench", model="sora-2", seconds="4", size="1280x720")
    stats = CycleStats(wall=[], cpu=[], polls=0, content_bytes=0)
    async with make_http_client() as http:
        client = VideosClient(http, ClientConfig(base_url=url, api_key=SecretStr("bench")))
        # The first job waits for the simulator's one render; later ones reuse its clip.
        for i in range(WARMUP):
            await one_cycle(client, request, workdir / f"warm{i}.mp4")
        for i in range(count):
            wall, cpu = time.perf_counter(), time.process_time()
            polls, size = await one_cycle(client, request, workdir / f"{i % 4}.mp4")
            stats.cpu.append(time.process_time() - cpu)
            stats.wall.append(time.perf_counter() - wall)
            stats.polls += polls
            stats.content_bytes = size
    return stats


async def big_download(url: str, workdir: Path) -> tuple[int, int]:
    async with httpx.AsyncClient(timeout=60) as http:
        client = VideosClient(http, ClientConfig(base_url=url, api_key=SecretStr("bench")))
        await client.retrieve("warmup")
        idle = rss_bytes()
        with PeakSampler() as sampler:
            size = await client.download("v1", workdir / "big.mp4")
        assert size == BIG
        return idle, sampler.peak


def run(quick: bool = False) -> list[Row]:
    count = QUICK_CYCLES if quick else CYCLES
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "sim-cache"
        started = time.perf_counter()
        with sim_server(cache) as url:
            stats = asyncio.run(cycles(url, work, count))
        took = time.perf_counter() - started
        wall_ms = [t * 1000 for t in stats.wall]
        cpu_ms = [t * 1000 for t in stats.cpu]
        wall_median, wall_p99 = statistics.median(wall_ms), percentile(wall_ms, 0.99)
        cpu_median, cpu_mean = statistics.median(cpu_ms), statistics.fmean(cpu_ms)
        rows.append(
            Row(
                "client: create+poll+download cycle, wall (sim subprocess)",
                f"median {wall_median:.2f} ms, p99 {wall_p99:.2f} ms",
                f"{count} cycles in {took:.0f} s, {stats.polls / count:.2f} polls/cycle, "
                f"{stats.content_bytes / 1024:.0f} KiB mp4",
                "one VideosClient create, retrieve until completed, download, against the "
                "simulator in its own process with jobs done at once",
            )
        )
        rows.append(
            Row(
                "client: overhead per cycle, client CPU time",
                f"median {cpu_median:.2f} ms, mean {cpu_mean:.2f} ms",
                "time.process_time of the client process (all its threads)",
                "CPU time the client spends on one such cycle",
            )
        )
        with server(BIG) as url:
            idle, peak = asyncio.run(big_download(url, work))
        over = (peak - idle) / 1_048_576
        rows.append(
            Row(
                "client: peak RSS over idle, 200 MB download",
                f"{over:.1f} MB (idle {idle / 1_048_576:.0f} MB)",
                f"target < {RSS_TARGET_MB} MB: {'met' if over < RSS_TARGET_MB else 'MISSED'}",
                "peak RSS (sampled every 2 ms) minus idle RSS while VideosClient.download "
                "streams a 200 MB body to disk",
            )
        )
    return rows
