"""Client overhead per create + poll + download cycle, and peak RSS while downloading a 200 MB body.

Target: the download's peak RSS stays within 30 MB of the idle process.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from bot.api.client import ClientConfig, VideosClient
from bot.api.models import CreateVideo

CYCLES = 200
BIG = 200 * 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@contextmanager
def server(content_bytes: int) -> Iterator[str]:
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


class PeakSampler:
    """Samples RSS every few milliseconds in a thread (the event loop is busy downloading)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def cycles(url: str, workdir: Path) -> list[float]:
    request = CreateVideo(prompt="bench", model="sora-2", seconds="4", size="1280x720")
    times: list[float] = []
    async with httpx.AsyncClient() as http:
        client = VideosClient(http, ClientConfig(base_url=url, api_key=SecretStr("bench")))
        for i in range(CYCLES):
            started = time.perf_counter()
            created = await client.create(request)
            await client.retrieve(created.id)
            await client.download(created.id, workdir / f"{i % 4}.mp4")
            times.append(time.perf_counter() - started)
    return times


async def big_download(url: str, workdir: Path) -> tuple[int, int]:
    async with httpx.AsyncClient(timeout=60) as http:
        client = VideosClient(http, ClientConfig(base_url=url, api_key=SecretStr("bench")))
        await client.retrieve("warmup")
        idle = rss_bytes()
        with PeakSampler() as sampler:
            size = await client.download("v1", workdir / "big.mp4")
        assert size == BIG
        return idle, sampler.peak


def run() -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with server(64 * 1024) as url:
            times = asyncio.run(cycles(url, work))
        ms = sorted(t * 1000 for t in times)
        rows.append(
            (
                "client: create+poll+download cycle (64 KiB body, loopback)",
                f"median {statistics.median(ms):.2f} ms, p99 {ms[int(len(ms) * 0.99) - 1]:.2f} ms",
                f"{CYCLES} cycles",
            )
        )
        with server(BIG) as url:
            idle, peak = asyncio.run(big_download(url, work))
        rows.append(
            (
                "client: peak RSS over idle, 200 MB download",
                f"{(peak - idle) / 1_048_576:.1f} MB (idle {idle / 1_048_576:.0f} MB)",
                "target < 30 MB",
            )
        )
    return rows
