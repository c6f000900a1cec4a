"""One odd job never stalls the rest: each hostile behaviour of `tests/hostile.py`, switched on for
one job among healthy ones, affects that job alone.

The bot side is the real bot (`tests/e2e.py`: discord.py against the fake Discord, a real SQLite
file) talking to the hostile proxy in front of the simulator. For every behaviour: the healthy
jobs are each delivered exactly once, the odd job ends (delivered, or failed and refunded, at its
deadline where its status cannot be read), every job's outcome is shown once, a member is charged
exactly when they got their video, and no request made two jobs at the service.

The CLI side runs `python -m videobot generate` in a subprocess against the same proxy: a
behaviour the
CLI cannot get past ends in one line on stderr and a non-zero exit, with no traceback and no file
left where the video would have been; one it can get past ends in a playable mp4.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import pytest
from PIL import Image

from bot.sim import SimConfig, SimServer
from bot.store import Job, Store
from discordbot.client import VideoBot
from tests.e2e import API_KEY, World, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.hostile import BEHAVIOURS, HostileServer, hostile_sim
from tests.test_cli import run_cli

JOB_SECONDS = 1.0
# Long enough for the healthy jobs to be delivered well before it, under a loaded machine.
DEADLINE_SECONDS = 16.0
HEALTHY = 3
GATEWAY_SECRET = "gw-hostile-gateway-secret-7781"
WAIT = 150.0


@dataclass(frozen=True)
class Case:
    """What the issue demands of one behaviour.

    `outcome`: how the odd job ends for its member (`video`: delivered; `failure`: told it
    failed, nothing charged; `either`: where the issue leaves it open). `at_deadline`: its status
    cannot be read, so only its deadline ends it. `outlives`: the odd value lasts beyond the
    healthy jobs, so the odd job is still under way when they are delivered. `cli`: `ok` (a
    playable mp4), `error` (one line, non-zero exit), `either` (where the issue leaves the CLI's
    choice open; the output rules hold either way) or `video` (the video is saved; a refused
    extra may still be an error line). `markers`: the behaviours switched on (default: the
    case's own)."""

    outcome: Literal["video", "failure", "either"]
    at_deadline: bool = False
    outlives: bool = False
    cli: Literal["ok", "error", "either", "video"] = "error"
    markers: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    "error-code-int": Case("failure"),
    "forbidden": Case("failure", at_deadline=True),
    "redirect": Case("failure", at_deadline=True),
    "html": Case("failure", at_deadline=True),
    "html-502": Case("failure", at_deadline=True),
    "progress-inf": Case("video", outlives=True, cli="either"),
    "completed-at-huge": Case("video", cli="ok"),
    "list-item-no-id": Case("video", cli="ok"),
    "list-item-wrong-type": Case("video", cli="ok"),
    "list-item-bad-field": Case("video", cli="ok"),
    # The hint is capped at about a minute: these two take that long.
    "poll-after-huge": Case("video", cli="ok"),
    "poll-after-inf": Case("video", cli="ok"),
    "endless-download": Case("failure"),
    "huge-error-body": Case("failure", at_deadline=True),
    "content-redirect": Case("failure"),
    # Endless pages matter where the bot searches the listing: after an ambiguous create. The
    # search is cut short, so the job may be adopted or refunded; either way it ends, once.
    "has-more-forever": Case(
        "either", cli="either", markers=("has-more-forever", "create-500-after")
    ),
    "unknown-status": Case("failure", at_deadline=True),
    "create-500-before": Case("video", cli="either"),
    "create-500-after": Case("video", cli="either"),
    "create-429": Case("video", cli="ok"),
    # The service made a job the bot cannot name: a "yes" that cannot be used is never sent
    # again (the listing shows the job, unusable as it is, so it was made).
    "unsafe-id-slash": Case("failure"),
    "unsafe-id-dots": Case("failure"),
    "thumbnail-is-mp4": Case("video", cli="ok"),
    "echo-auth": Case("failure"),
    "echo-auth-401": Case("failure"),
}


def test_every_behaviour_has_a_case() -> None:
    assert sorted(CASES) == sorted(BEHAVIOURS)


def markers(name: str) -> str:
    return " ".join(f"hostile:{m}" for m in CASES[name].markers or (name,))


# ---------------------------------------------------------------------- the bot


@pytest.fixture(scope="module")
def render_cache() -> Iterator[Path]:
    # The healthy clips are the same in every test: rendered once for the module.
    with tempfile.TemporaryDirectory(prefix="hostile-cache-") as tmp:
        yield Path(tmp)


@pytest.fixture
async def w(fake_discord: FakeDiscord, tmp_path: Path, render_cache: Path) -> AsyncIterator[World]:
    async with world(
        fake_discord, tmp_path, users=HEALTHY + 1, job_seconds=JOB_SECONDS, cache_dir=render_cache
    ) as env:
        yield env


@dataclass
class Outcomes:
    """What the channel shows for each job: videos posted and failure notices."""

    videos: Counter[int]
    failures: Counter[int]
    thumbnails: dict[int, bytes]

    def total(self, job_id: int) -> int:
        return self.videos[job_id] + self.failures[job_id]


def outcomes(w: World) -> Outcomes:
    videos: Counter[int] = Counter()
    failures: Counter[int] = Counter()
    thumbnails: dict[int, bytes] = {}
    for message in w.messages():
        if message.deleted or message.ephemeral:
            continue
        for a in message.attachments:
            if a.filename.startswith("video-") and a.filename.endswith(".mp4"):
                videos[int(a.filename.removeprefix("video-").removesuffix(".mp4"))] += 1
            elif a.filename.startswith("thumbnail-"):
                job_id = a.filename.removeprefix("thumbnail-").split(".", 1)[0]
                thumbnails[int(job_id)] = a.data
        for embed in message.embeds:
            footer = str((embed.get("footer") or {}).get("text", ""))
            if embed.get("title") == "Video failed" and footer.startswith("job "):
                failures[int(footer.split()[1])] += 1
    return Outcomes(videos, failures, thumbnails)


async def jobs_of(bot: VideoBot, w: World) -> list[Job]:
    """Each member's one job, in the order of `w.users`."""
    found: list[Job] = []
    for user in w.users:
        (job,) = await bot.store.recent_jobs(user.id, 10)
        found.append(job)
    return found


async def settled(store: Store) -> bool:
    return not await store.active_jobs() and not await store.undelivered_jobs()


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, limit: float = WAIT) -> None:
    """Until the async predicate holds; bounded by a generous overall limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def bot_settings(proxy: HostileServer) -> dict[str, Any]:
    return {
        "openai_base_url": proxy.url,
        "video_api_profile": "openai",
        "openai_max_retries": 1,
        "openai_extra_headers": {"X-Gateway-Key": GATEWAY_SECRET},
        "job_deadline_minutes": DEADLINE_SECONDS / 60,
        "video_max_download_mb": 5,
        "video_download_timeout_seconds": 10.0,
        # A hint asking for days is capped here: the job still ends, seconds (not a minute) later.
        "video_max_poll_after_seconds": 3.0,
    }


def quick_deliveries(bot: VideoBot) -> None:
    # A delivery that cannot succeed ends after its last try; minutes apart in production.
    bot.deliverer.retry_base = 0.5
    bot.deliverer.retry_cap = 1.0
    bot.deliverer.max_attempts = 2


# The cases that end at the odd job's deadline take its 16 s: started first with workers.
@pytest.mark.long
@pytest.mark.parametrize("name", sorted(CASES))
async def test_an_odd_job_affects_itself_alone(
    w: World, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    case = CASES[name]
    odd_prompt = f"odd clip {markers(name)}"
    prompts = [odd_prompt, *(f"healthy clip {i}" for i in range(1, HEALTHY + 1))]
    async with HostileServer(w.sim.base_url) as proxy, w.bot(**bot_settings(proxy)) as bot:
        quick_deliveries(bot)
        interactions: list[Interaction] = []
        for user, prompt in zip(w.users, prompts, strict=True):
            interactions.append(
                await w.fake.dispatch_slash(
                    "video", {"prompt": prompt}, user=user, channel=w.channel
                )
            )
        await w.wait_for(lambda: all(i.acknowledged for i in interactions), timeout=30)

        async def jobs_recorded() -> bool:
            return all([await bot.store.recent_jobs(u.id, 10) for u in w.users])

        await wait_until(jobs_recorded, "every request to become a job", 30)
        odd, *healthy = await jobs_of(bot, w)

        async def healthy_delivered() -> bool:
            shown = outcomes(w)
            return all(shown.videos[j.id] >= 1 for j in healthy)

        await wait_until(healthy_delivered, "the healthy jobs' videos")
        if case.at_deadline or case.outlives:
            # The others did not wait for the odd job: it is still under way.
            fresh = await bot.store.get_job(odd.id)
            assert fresh is not None and not fresh.finished, fresh
        await wait_until(lambda: settled(bot.store), "every job to end")
        shown = outcomes(w)
        final = {j.id: await bot.store.get_job(j.id) for j in (odd, *healthy)}
        balances = await bot.store.ledger_sum_by_job()

    # Every job's outcome is shown exactly once; the healthy ones are videos.
    assert {j.id: shown.total(j.id) for j in (odd, *healthy)} == dict.fromkeys(
        [odd.id, *(j.id for j in healthy)], 1
    ), shown
    assert all(shown.videos[j.id] == 1 for j in healthy), shown
    if case.outcome != "either":
        expected = shown.videos if case.outcome == "video" else shown.failures
        assert expected[odd.id] == 1, (name, final[odd.id])
    # Charged exactly when the member got the video; nothing held once all has ended.
    for job_id, job in final.items():
        assert job is not None
        balance = balances.get(job_id)
        held, spent = (balance.held, balance.spent) if balance else (0, 0)
        charged = job.cost_micros if shown.videos[job_id] else 0
        assert (held, spent) == (0, charged), (job_id, job.state, held, spent)
    # One request never made two jobs at the service (deleted ones included).
    made = Counter(
        str(r.json.get("prompt"))
        for r in w.sim.requests
        if r.route == "POST /videos" and r.status == 200 and isinstance(r.json, dict)
    )
    assert all(made[p] <= 1 for p in prompts), made
    # No secret reached a message, the store or the log (the key is checked by conftest too).
    odd_final = final[odd.id]
    assert odd_final is not None
    stored = f"{odd_final.error_code} {odd_final.error_message}"
    for secret in (API_KEY, GATEWAY_SECRET):
        assert secret not in stored
        assert secret not in caplog.text
        assert not [m for m in w.messages() if secret in f"{m.content} {m.embeds} {m.history}"]
    assert "<html" not in stored.lower()
    await behaviour_checks(name, w, proxy, odd, interactions[0], shown)


async def behaviour_checks(
    name: str, w: World, proxy: HostileServer, odd: Job, reply: Interaction, shown: Outcomes
) -> None:
    """What one behaviour demands beyond the rest."""
    odd_id = odd.api_video_id
    if name == "unknown-status":
        assert reply.original is not None
        seen = f"{reply.original.embeds} {reply.original.history}"
        assert "moderating" in seen, "the unknown status is shown by name"
    if CASES[name].at_deadline and odd_id is not None:
        # A job given up at its deadline is deleted at the service before its refund.
        assert [s for s in proxy.requests_for(odd_id) if s.method == "DELETE"], proxy.seen[-5:]
    if name == "thumbnail-is-mp4":
        thumb = shown.thumbnails.get(odd.id)
        if thumb is not None:
            assert b"ftyp" not in thumb[:16], "an mp4 was posted as the thumbnail"
            with Image.open(io.BytesIO(thumb)) as image:
                image.verify()
    if name == "has-more-forever":
        lists = [s for s in proxy.seen if s.method == "GET" and s.raw_path == "/v1/videos"]
        first = sum(1 for s in lists if "after" not in s.query)
        assert first >= 1
        assert len(lists) - first <= 10 * first, f"{len(lists)} list pages for {first} scans"
    if name == "create-500-before":
        creates = [
            s for s in proxy.seen if s.method == "POST" and "create-500-before" in s.behaviours
        ]
        assert len(creates) == 2, "sent again once the service showed it had not made the job"
    if name.startswith("unsafe-id"):
        # The unusable id never went into a path.
        assert [s.raw_path for s in proxy.seen if not s.raw_path.startswith("/v1/videos")] == []
        shown_ids = [i for i, names in proxy.jobs.items() if name in names]
        assert all(proxy.requests_for(i) == [] for i in shown_ids)


# ---------------------------------------------------------------------- the CLI


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[SimServer, HostileServer]]:
    # A prepared clip: the CLI's video must play, whatever its frames show.
    async with hostile_sim(SimConfig(job_seconds=0.5, clip="prepared")) as pair:
        yield pair


def cli_settings(proxy: HostileServer) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": proxy.url,
        "OPENAI_EXTRA_HEADERS": f"X-Gateway-Key: {GATEWAY_SECRET}",
        "VIDEO_API_PROFILE": "openai",
        "POLL_INTERVAL_SECONDS": "1",
        "OPENAI_MAX_RETRIES": "1",
        "JOB_DEADLINE_MINUTES": "0.15",
        "VIDEO_MAX_DOWNLOAD_MB": "5",
        "VIDEO_DOWNLOAD_TIMEOUT_SECONDS": "10",
        "VIDEO_MAX_POLL_AFTER_SECONDS": "3",
    }


def playable(path: Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.video) and container.duration is not None


@pytest.mark.parametrize("name", sorted(CASES))
async def test_the_cli_on_a_hostile_server(
    tmp_path: Path, hostile: tuple[SimServer, HostileServer], name: str
) -> None:
    case = CASES[name]
    sim, proxy = hostile
    if name.startswith("poll-after"):
        # Still running at the first poll, so the hint decides when the next one comes.
        sim.config.job_seconds = 3.0
    out = tmp_path / "out" / "clip.mp4"
    code, stdout, stderr = await run_cli(
        tmp_path,
        "generate",
        f"a lighthouse {markers(name)}",
        "--out",
        str(out),
        wait_limit=WAIT,
        **cli_settings(proxy),
    )
    printed = stdout + stderr
    assert "Traceback" not in printed, stderr
    for secret in (API_KEY, GATEWAY_SECRET):
        assert secret not in printed
    assert "<html" not in printed.lower()
    if code != 0:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith("error: ")
    expect = case.cli if case.cli != "either" else ("ok" if code == 0 else "error")
    if expect in ("ok", "video"):
        assert code == 0 or expect == "video", stderr
        assert playable(out)
        thumb = out.with_suffix(".webp")
        if thumb.exists():
            with Image.open(thumb) as image:
                assert image.format == "WEBP", "the thumbnail is not an image"
        return
    assert code != 0, stdout
    # Nothing is left where the video, its thumbnail or a partial download would be.
    assert left_behind(tmp_path) == []
    assert not out.exists()


def left_behind(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix in (".mp4", ".webp", ".part")]


# Bearer for an OpenAI-shaped server, `api-key` for Azure's.
@pytest.mark.parametrize("profile", ["openai", "azure"])
@pytest.mark.parametrize("name", ["echo-auth", "echo-auth-401"])
async def test_the_cli_never_prints_what_the_server_echoes_of_its_secrets(
    tmp_path: Path, hostile: tuple[SimServer, HostileServer], name: str, profile: str
) -> None:
    _, proxy = hostile
    code, stdout, stderr = await run_cli(
        tmp_path,
        "generate",
        f"a lighthouse hostile:{name}",
        wait_limit=WAIT,
        **{**cli_settings(proxy), "VIDEO_API_PROFILE": profile},
    )
    # The create was answered with the echo of its headers.
    (create,) = [s for s in proxy.seen if s.method == "POST"]
    assert create.status in (400, 401)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for secret in (API_KEY, GATEWAY_SECRET):
        assert secret not in stdout + stderr
