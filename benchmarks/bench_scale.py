"""What one bot process can carry, on SQLite and on PostgreSQL (`DATABASE_URL`): the figures of
docs/scaling.md.

1. Ack latency at a burst of 200 /video (as `bench_ack`: the bot in its own process against the
   fake Discord, INTERACTION_CREATE sent -> defer callback received), for each engine in turn,
   A B A B, a fresh bot and a fresh database per burst.
2. Jobs per minute: 200 /video at once against a warm bot whose simulator finishes each job in
   `JOB_SECONDS`, polled every second; from the first INTERACTION_CREATE to the last mp4 stored
   by the fake Discord. Every job must be delivered, and exactly once. The same runs count the
   Discord and video API requests per job.
3. Tracker rounds at 1000 and 5000 running jobs: `Tracker.poll_once` over that many jobs in the
   store, against the simulator (list endpoint, pages of 100) in a process of its own, rounds
   back to back: the time a round takes is how stale a job's news can get beyond the interval.
   The same stores then time a renewal of every job's lease (the lease keeper's periodic work).
4. Store write transactions a second, one at a time and 20 at once: a grant of the shared
   request log, the transaction every video API request costs on PostgreSQL (on SQLite the bot
   keeps an in-process limiter instead; the row is a measure of the engine's serialised writes).
5. RSS per guild: the bot's RSS after connecting to 1 guild and to `GUILDS` guilds (each with a
   text channel and a few members), the difference over the added guilds. The same on both
   engines, so measured once.

PostgreSQL is a throwaway cluster this benchmark starts itself (`tests.pgserver`), one database
per run, made durable again (fsync, synchronous_commit and full_page_writes on; the tests' other
settings stay: 64 MB shared buffers, autovacuum off), as SQLite runs with the bot's defaults
(WAL, synchronous FULL). Where no PostgreSQL server is installed the rows say so and only SQLite
is measured. Both engines run on the same machine as the bot, the fake Discord and the simulator:
PostgreSQL's own CPU time is taken from the same two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from benchmarks.bench_ack import PROMPT as ACK_PROMPT
from benchmarks.bench_ack import Burst, one_burst
from benchmarks.bench_client import sim_server
from benchmarks.bench_delivery import api_kind, discord_kind, per_job, posted_at
from benchmarks.bench_odd_jobs import Quiet, create_jobs
from benchmarks.common import Row, ms, percentile
from benchmarks.harness import all_shown, bot_process, slash_burst, stage
from bot.api.client import VideosClient
from bot.api.config import make_http_client
from bot.api.ratelimit import MinuteRateLimiter
from bot.backend import client_config
from bot.settings import Settings
from bot.store import Store
from bot.tracker import Tracker
from tests.fakediscord import Interaction
from tests.fakediscord.state import Message
from tests.pgserver import PgCluster, PgUnavailable, create_database

ACK_SIZE = 200
ACK_BURSTS = 5
QUICK_ACK_BURSTS = 1
JOBS = 200
JOB_SECONDS = 1.0
JOB_RUNS = 3
QUICK_JOB_RUNS = 1
JOB_USERS = 20
WARMUP = 5
PROMPT = "a kite over the dunes"
TRACKED = (1000, 5000)
QUICK_TRACKED = (1000,)
ROUNDS = 5
QUICK_ROUNDS = 3
WRITES = 2000
QUICK_WRITES = 500
WRITERS = (1, 20)
GUILDS = 1000
MEMBERS_PER_GUILD = 5
API_KEY = "sk-bench-scale"
# PostgreSQL's own defaults for what the tests' cluster turns off (tests/pgserver.py).
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


# ---------------------------------------------------------------------------------- the engines


@dataclass
class Engine:
    """Where a run keeps its data: SQLite under the run's data folder, or a fresh database of
    the benchmark's PostgreSQL cluster."""

    name: str
    cluster: PgCluster | None = None

    async def fresh(self, folder: Path) -> str | Path:
        """A new, empty database: the SQLite file's path, or a PostgreSQL URL."""
        if self.cluster is None:
            return folder / "bot.sqlite3"
        return await create_database(self.cluster.base_url)

    async def settings(self, folder: Path) -> dict[str, Any]:
        """The bot's settings for a fresh database (none for SQLite: its default file under the
        run's DATA_DIR)."""
        if self.cluster is None:
            return {}
        return {"database_url": await self.fresh(folder)}


@contextlib.asynccontextmanager
async def engines() -> AsyncIterator[tuple[list[Engine], str]]:
    """SQLite, and PostgreSQL where a server is installed; the second value says why not."""
    sqlite = Engine("SQLite")
    try:
        # The tests' cluster trades durability for speed; measured against SQLite's synchronous
        # FULL, PostgreSQL keeps its durable defaults: every commit flushed to disk.
        cluster = PgCluster(settings=DURABLE)
    except PgUnavailable as exc:
        yield [sqlite], f"PostgreSQL not measured: {exc}"
        return
    cluster.start()
    try:
        conn = await asyncpg.connect(cluster.base_url)
        try:
            for name, value in DURABLE.items():
                if await conn.fetchval(f"SHOW {name}") != value:
                    raise RuntimeError(f"the benchmark's PostgreSQL runs without {name}={value}")
        finally:
            await conn.close()
        yield [sqlite, Engine("PostgreSQL", cluster)], ""
    finally:
        cluster.stop()


# ---------------------------------------------------------------------------------- 1. acks


async def ack_rows(work: Path, all_engines: list[Engine], bursts: int) -> list[Row]:
    found = {e.name: Burst() for e in all_engines}
    with sim_server(work / "sim-cache", job_seconds=3600.0) as api_url:
        for run in range(bursts):
            for engine in all_engines:
                where = work / f"ack-{engine.name}"
                where.mkdir(exist_ok=True)
                await one_burst(
                    where,
                    api_url,
                    ACK_SIZE,
                    run,
                    found[engine.name],
                    **await engine.settings(where),
                )
    rows = []
    for engine in all_engines:
        b = found[engine.name]
        each = "/".join(ms(p) for p in b.p99s)
        rows.append(
            Row(
                f"scale, {engine.name}: ack latency, burst of {ACK_SIZE} /video",
                f"p50 {ms(statistics.median(b.p50s))}, p99 {ms(statistics.median(b.p99s))}",
                f"median of {bursts} bursts (p99 of each: {each}); all {len(b.latency)} pooled: "
                f"p50 {ms(statistics.median(b.latency))}, p99 {ms(percentile(b.latency, 0.99))}"
                f", max {ms(max(b.latency))}; inside the bot p99 "
                f"{ms(percentile(b.inside, 0.99))}; job embed shown p50 "
                f"{ms(statistics.median(b.shown))}, p99 {ms(percentile(b.shown, 0.99))}; "
                f"{b.late} past Discord's 3 s, {b.refused} without a job embed",
                f"as the `ack` benchmark's burst of {ACK_SIZE}, the bot's database on "
                f"{engine.name}; bursts alternate between the engines",
            )
        )
    return rows


# ---------------------------------------------------------------------------------- 2. jobs/min


@dataclass
class Drain:
    spans: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    discord: Counter[str] = field(default_factory=Counter)
    api: Counter[str] = field(default_factory=Counter)
    rss: int = 0
    runs: int = 0

    @property
    def per_minute(self) -> list[float]:
        return [JOBS / span * 60 for span in self.spans]


def videos_in(messages: Iterable[Message | None]) -> int:
    """How many mp4s these messages carry in all."""
    return sum(
        1 for m in messages if m is not None for a in m.attachments if a.filename.endswith(".mp4")
    )


def videos_posted(interactions: list[Interaction]) -> int:
    """How many mp4s the interactions' replies carry in all (one each when delivered once)."""
    return videos_in(i.original for i in interactions)


async def drain_once(work: Path, engine: Engine, run: int, into: Drain) -> None:
    where = work / f"jobs-{engine.name}-{run}"
    where.mkdir()
    async with (
        stage(where, users=JOB_USERS, job_seconds=JOB_SECONDS, cache_dir=work / "sim-cache") as w,
        bot_process(w, poll_interval_seconds=1.0, **await engine.settings(where)) as bot,
    ):
        warm = await slash_burst(w, WARMUP, PROMPT)
        await w.fake.wait_for(lambda: all(posted_at(i) for i in warm), timeout=60, poll=0.1)
        first = len(w.fake.requests)
        w.sim.requests.clear()
        burst = await slash_burst(w, JOBS, PROMPT)
        await w.fake.wait_for(
            lambda: all(posted_at(i) is not None for i in burst), timeout=600, poll=0.1
        )
        into.rss = max(into.rss, bot.rss())
        # Whatever the bot still sends for these jobs (a last edit) lands in the count too.
        await asyncio.sleep(1.0)
        posted = {i.id: posted_at(i) for i in burst}
        every = w.fake.channel_messages(w.channel, include_ephemeral=True)
        if videos_posted(burst) != JOBS or videos_in(every) != JOBS + WARMUP:
            raise RuntimeError(f"{engine.name}: a job was delivered twice or elsewhere")
        into.discord += Counter(discord_kind(r.key) for r in w.fake.requests[first:])
        into.api += Counter(api_kind(r.route) for r in w.sim.requests)
    at = {i.id: p[1] for i in burst if (p := posted[i.id]) is not None}
    into.spans.append(max(at.values()) - min(i.created_at for i in burst))
    into.latency += [at[i.id] - i.created_at for i in burst]
    into.runs += 1


async def jobs_rows(work: Path, all_engines: list[Engine], runs: int) -> list[Row]:
    found = {e.name: Drain() for e in all_engines}
    for run in range(runs):
        for engine in all_engines:
            await drain_once(work, engine, run, found[engine.name])
    rows = []
    for engine in all_engines:
        d = found[engine.name]
        rates = d.per_minute
        each = "/".join(f"{r:.0f}" for r in rates)
        jobs = JOBS * d.runs
        rows.append(
            Row(
                f"scale, {engine.name}: jobs per minute, {JOBS} /video at once",
                f"{statistics.median(rates):.0f} jobs/min",
                f"median of {d.runs} runs ({each}); first /video -> last mp4 posted "
                f"{statistics.median(d.spans):.1f} s; each job /video -> its mp4 posted p50 "
                f"{ms(statistics.median(d.latency))}, p99 {ms(percentile(d.latency, 0.99))}; "
                f"every job delivered once; per job: Discord {per_job(d.discord, jobs)}, video "
                f"API {per_job(d.api, jobs)}; bot RSS up to {d.rss / 1_048_576:.0f} MB",
                f"{JOBS} members' /video sent at once to a warm bot (database on {engine.name}), "
                f"{JOB_SECONDS:g} s jobs at the simulator, POLL_INTERVAL_SECONDS=1: jobs "
                "delivered per minute from the first request to the last mp4 stored",
            )
        )
    return rows


# ---------------------------------------------------------------------------------- 3. tracker


@dataclass
class Tracked:
    rounds: list[float]
    # Lease renewals (`Store.claim_leases`, the lease keeper's work every third of a lease).
    renewals: list[float]


async def tracker_rounds(api_url: str, target: str | Path, jobs: int, rounds: int) -> Tracked:
    settings = Settings(
        _env_file=None,
        openai_base_url=api_url,
        openai_api_key=SecretStr(API_KEY),
        video_api_profile="openai",
    )
    http = make_http_client(
        settings.openai_timeout_seconds, settings.openai_connect_timeout_seconds
    )
    store = await Store.open(target)
    try:
        config = client_config(settings, base_url=api_url, api_key=SecretStr(API_KEY))
        # No limit: at the default 120/min a round is paced by the limiter, not the tracker.
        client = VideosClient(http, config, limiter=MinuteRateLimiter(10**9))
        await create_jobs(client, store, ["bench tracked job"] * jobs)
        tracker = Tracker(store, client, Quiet(), interval=settings.poll_interval_seconds)
        seconds = []
        for _ in range(rounds):
            began = time.perf_counter()
            await tracker.poll_once()
            seconds.append(time.perf_counter() - began)
        running = sum(1 for j in await store.active_jobs() if j.state == "running")
        if running != jobs:
            raise RuntimeError(f"{jobs - running} of {jobs} jobs stopped running")
        renewals = []
        for _ in range(rounds):
            began = time.perf_counter()
            held = await store.claim_leases()
            renewals.append(time.perf_counter() - began)
            if len(held.mine) != jobs:
                raise RuntimeError(f"{len(held.mine)} of {jobs} jobs held after a renewal")
        return Tracked(seconds, renewals)
    finally:
        await store.close()
        await http.aclose()


async def tracker_rows(
    work: Path, all_engines: list[Engine], sizes: tuple[int, ...], rounds: int
) -> list[Row]:
    rows = []
    for jobs in sizes:
        for engine in all_engines:
            # A fresh simulator each: the list pages hold this case's jobs only.
            where = work / f"tracked-{engine.name}-{jobs}"
            where.mkdir()
            with sim_server(work / "sim-cache", job_seconds=36_000.0) as api_url:
                found = await tracker_rounds(api_url, await engine.fresh(where), jobs, rounds)
            seconds = found.rounds
            shown = "/".join(ms(s) for s in seconds)
            renewal = statistics.median(found.renewals)
            rows.append(
                Row(
                    f"scale, {engine.name}: tracker round, {jobs} running jobs",
                    f"median {ms(statistics.median(seconds))}, slowest {ms(max(seconds))}",
                    f"{rounds} rounds back to back ({shown}); {jobs // 100} list requests a "
                    f"round; every job still running after them; renewing the {jobs} jobs' "
                    f"leases (every third of JOB_LEASE_SECONDS) median {ms(renewal)}, slowest "
                    f"{ms(max(found.renewals))} over {len(found.renewals)}",
                    f"wall time of one Tracker.poll_once over {jobs} running jobs in the store "
                    f"({engine.name}), the simulator (list endpoint) in its own process; and "
                    "of one Store.claim_leases over them",
                )
            )
    return rows


# ---------------------------------------------------------------------------------- 4. writes


async def write_rate(target: str | Path, concurrency: int, count: int) -> float:
    """Store write transactions a second: `count` grants of the shared request log (one
    transaction each, as every video API request costs on PostgreSQL), `concurrency` at once."""
    store = await Store.open(target)
    try:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                await store.take_request_slot("bench", per_minute=10**9, window=60.0)

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - began)
    finally:
        await store.close()


async def write_rows(work: Path, all_engines: list[Engine], count: int) -> list[Row]:
    rows = []
    for engine in all_engines:
        rates = {}
        for concurrency in WRITERS:
            where = work / f"writes-{engine.name}-{concurrency}"
            where.mkdir()
            rates[concurrency] = await write_rate(await engine.fresh(where), concurrency, count)
        shown = ", ".join(f"{n} at once {r:.0f}/s" for n, r in rates.items())
        rows.append(
            Row(
                f"scale, {engine.name}: store write transactions",
                f"{max(rates.values()):.0f}/s",
                f"{shown}; {count} each",
                f"Store.take_request_slot (a DELETE, a COUNT and an INSERT in one serialised "
                f"transaction: what each video API request costs on a shared database) on "
                f"{engine.name}, from one process",
            )
        )
    return rows


# ---------------------------------------------------------------------------------- 5. guilds


async def rss_with_guilds(work: Path, guilds: int) -> int:
    where = work / f"guilds-{guilds}"
    where.mkdir()
    async with stage(where, users=MEMBERS_PER_GUILD, job_seconds=3600.0) as w:
        for n in range(guilds - 1):
            guild = w.fake.add_guild(f"Guild {n}")
            w.fake.add_text_channel(guild, "videos")
            for user in w.users:
                w.fake.add_member(guild, user)
        async with bot_process(w) as bot:
            # One /video through the whole path, so every code path is loaded as in production.
            warm = await slash_burst(w, 1, ACK_PROMPT)
            await all_shown(w, warm, timeout=60)
            stats = await bot.stats()
            return stats["rss"]


async def guild_rows(work: Path) -> list[Row]:
    one = await rss_with_guilds(work, 1)
    many = await rss_with_guilds(work, GUILDS)
    per = (many - one) / (GUILDS - 1)
    return [
        Row(
            f"scale: RSS per guild ({GUILDS} vs 1)",
            f"{per / 1024:.1f} KB",
            f"bot RSS {one / 1_048_576:.1f} MB with 1 guild, {many / 1_048_576:.1f} MB with "
            f"{GUILDS}; each guild a text channel, the @everyone role and {MEMBERS_PER_GUILD} "
            "members (real guilds have more channels and roles: more per guild)",
            f"the bot's RSS after a full garbage collection, connected to {GUILDS} guilds against "
            "1, over the added guilds",
        )
    ]


# ---------------------------------------------------------------------------------- running

PARTS = ("ack", "jobs", "tracker", "writes", "guilds")


async def measure(quick: bool, parts: tuple[str, ...] = PARTS) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        async with engines() as (all_engines, missing):
            if missing:
                rows.append(Row("scale: engines", "SQLite only", missing))
            if "ack" in parts:
                bursts = QUICK_ACK_BURSTS if quick else ACK_BURSTS
                rows += await ack_rows(work, all_engines, bursts)
            if "jobs" in parts:
                rows += await jobs_rows(work, all_engines, QUICK_JOB_RUNS if quick else JOB_RUNS)
            if "tracker" in parts:
                sizes = QUICK_TRACKED if quick else TRACKED
                rounds = QUICK_ROUNDS if quick else ROUNDS
                rows += await tracker_rows(work, all_engines, sizes, rounds)
            if "writes" in parts:
                rows += await write_rows(work, all_engines, QUICK_WRITES if quick else WRITES)
        if "guilds" in parts:
            rows += await guild_rows(work)
    return rows


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(measure(quick))


def main(argv: list[str]) -> None:
    """`python -m benchmarks.bench_scale [--quick] [PART ...]`: some parts only (ack, jobs,
    tracker, writes, guilds), printed one row a line, for repeated runs of one figure."""
    parts = tuple(a for a in argv if not a.startswith("-")) or PARTS
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part {', '.join(sorted(unknown))}; choose from {PARTS}")
    for row in asyncio.run(measure("--quick" in argv, parts)):
        print(f"{row.name}  |  {row.value}  |  {row.note}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
