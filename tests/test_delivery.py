"""Delivery over a real SQLite file and a scripted API on loopback, with a real mp4: attempts are
spaced out and capped, the video is downloaded once however many tries it takes, and a delivery
that cannot succeed ends as undeliverable, told and refunded, its file removed at retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.profiles import Capabilities
from bot.delivery import Deliverer, Result
from bot.sim.media import render_video
from bot.store import Job, NewJob, Store
from tests.clock import Clock
from tests.scripted_api import ScriptedAPI
from tests.sinks import QuietSink

COST = 400_000


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    return render_video(path, 160, 90, 1, 8, "a fox").read_bytes()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "bot.sqlite3", clock=clock)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def api(mp4: bytes) -> AsyncIterator[ScriptedAPI]:
    async with ScriptedAPI() as server:

        async def content(request: web.Request) -> web.StreamResponse:
            if request.query.get("variant", "video") != "video":
                return web.json_response({"error": {"message": "no such variant"}}, status=404)
            return web.Response(body=mp4, content_type="video/mp4")

        server.on("GET", "/videos/v1/content", content)
        yield server


@pytest.fixture
async def client(api: ScriptedAPI) -> AsyncIterator[VideosClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        config = ClientConfig(
            base_url=api.url,
            api_key=SecretStr("k"),
            capabilities=Capabilities(variants=False),
            max_retries=0,
        )
        yield VideosClient(http, config, sleep=_no_sleep)


class RefusingSink(QuietSink):
    """A channel (and DMs) that refuse every upload: the result with a video never arrives;
    `refuse_times` limits how many tries fail. A plain notice without files still gets through."""

    def __init__(self, refuse_times: int | None = None) -> None:
        self.refuse_times = refuse_times
        self.results: list[Result] = []

    async def send_result(self, job: Job, result: Result) -> int | None:
        self.results.append(result)
        uploads = [r for r in self.results if r.video is not None]
        if result.video is not None:
            assert result.video.exists()
            if self.refuse_times is None or len(uploads) <= self.refuse_times:
                raise RuntimeError("403 Forbidden: Missing Access")
            return 55
        return 77


async def finished_job(store: Store, clock: Clock) -> Job:
    job = await store.insert_job(
        NewJob(
            user_id=1,
            channel_id=10,
            prompt="a fox",
            model="sora-2",
            seconds="4",
            size="1280x720",
            cost_micros=COST,
        )
    )
    await store.mark_create_attempted(job.id, clock.now)
    await store.attach_video(job.id, "v1", "queued", 0)
    done = await store.mark_succeeded(job.id, clock.now, clock.now + 3600)
    assert done is not None
    return done


def downloads(api: ScriptedAPI) -> int:
    return sum(
        1
        for s in api.seen
        if s.path == "/videos/v1/content" and s.query.get("variant", "video") == "video"
    )


def on_disk(path: Path) -> bool:
    return path.exists()


async def attempt(deliverer: Deliverer) -> None:
    await deliverer.sweep()
    await deliverer.tasks.drain()


async def test_a_delivery_that_cannot_succeed_ends_undeliverable_after_the_cap(
    store: Store, client: VideosClient, api: ScriptedAPI, clock: Clock, tmp_path: Path
) -> None:
    sink = RefusingSink()
    media = tmp_path / "media"
    deliverer = Deliverer(store, client, sink, media, clock=clock, max_attempts=4)
    job = await finished_job(store, clock)
    await deliverer.job_finished(job)
    await deliverer.tasks.drain()
    for failures in range(1, 4):
        # Not before its back-off has passed...
        clock.now += deliverer.retry_delay(failures) - 1
        await attempt(deliverer)
        assert sum(1 for r in sink.results if r.video is not None) == failures
        # ...and then once.
        clock.now += 1
        await attempt(deliverer)
    uploads = [r for r in sink.results if r.video is not None]
    assert len(uploads) == 4
    assert downloads(api) == 1  # the file was kept between tries
    assert all(r.thumbnail is not None for r in uploads)  # made here from the first frame
    fresh = await store.get_job(job.id)
    assert fresh is not None
    assert (fresh.state, fresh.error_code, fresh.delivery_state) == (
        "failed",
        "undeliverable",
        "done",
    )
    assert fresh.delivered_message_id == 77  # the member was told, without the file
    notice = sink.results[-1]
    assert (
        notice.video is None
        and notice.failure
        and "could not be delivered" in notice.failure.plain()
    )
    entries = [(e.reason, e.amount_micros) for e in await store.ledger_entries(job.id)]
    assert entries == [("reserve", COST), ("refund", -COST)]
    # Nothing more is tried; the file stays until the service's copy would have expired.
    clock.now += 3600 - 1 - sum(deliverer.retry_delay(n) for n in range(1, 4))
    await attempt(deliverer)
    assert len(sink.results) == 5
    kept = Path(fresh.local_path or "")
    assert on_disk(kept)
    clock.now += 2
    await attempt(deliverer)
    assert not on_disk(kept)
    assert (await store.get_job(job.id)).local_path is None  # type: ignore[union-attr]
    assert not list((media / "videos").iterdir())
    assert downloads(api) == 1


async def test_a_delivery_that_fails_once_is_tried_later_with_the_same_file(
    store: Store, client: VideosClient, api: ScriptedAPI, clock: Clock, tmp_path: Path
) -> None:
    sink = RefusingSink(refuse_times=1)
    media = tmp_path / "media"
    deliverer = Deliverer(store, client, sink, media, clock=clock)
    job = await finished_job(store, clock)
    await deliverer.job_finished(job)
    await deliverer.tasks.drain()
    pending = await store.get_job(job.id)
    assert pending is not None and pending.delivery_state == "pending"
    assert pending.delivery_attempts == 1
    assert pending.delivery_retry_at == clock.now + deliverer.retry_delay(1)
    await attempt(deliverer)  # not yet due
    assert len(sink.results) == 1
    clock.now += deliverer.retry_delay(1)
    await attempt(deliverer)
    fresh = await store.get_job(job.id)
    assert fresh is not None and (fresh.state, fresh.delivery_state) == ("succeeded", "done")
    assert fresh.delivered_message_id == 55
    entries = [(e.reason, e.account, e.amount_micros) for e in await store.ledger_entries(job.id)]
    assert entries[-2:] == [("settle", "held", -COST), ("settle", "spent", COST)]
    assert downloads(api) == 1
    assert not list((media / "videos").iterdir())


async def test_a_restart_tries_a_waiting_delivery_at_once(
    store: Store, client: VideosClient, api: ScriptedAPI, clock: Clock, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    first = Deliverer(store, client, RefusingSink(refuse_times=1), media, clock=clock)
    job = await finished_job(store, clock)
    await first.job_finished(job)
    await first.tasks.drain()
    sink = RefusingSink(refuse_times=0)
    again = Deliverer(store, client, sink, media, clock=clock)
    await again.resume()
    await again.tasks.drain()
    fresh = await store.get_job(job.id)
    assert fresh is not None and fresh.delivery_state == "done"
    assert downloads(api) == 1


async def test_a_thumbnail_that_is_really_the_video_is_made_here_instead(
    store: Store, api: ScriptedAPI, clock: Clock, tmp_path: Path, mp4: bytes
) -> None:
    async def content(request: web.Request) -> web.StreamResponse:
        return web.Response(body=mp4, content_type="video/mp4")  # `variant` dropped

    api.on("GET", "/videos/v1/content", content)
    sink = RefusingSink(refuse_times=0)
    async with httpx.AsyncClient(timeout=5.0) as http:
        config = ClientConfig(base_url=api.url, api_key=SecretStr("k"), max_retries=0)
        client = VideosClient(http, config, sleep=_no_sleep)
        deliverer = Deliverer(store, client, sink, tmp_path / "media", clock=clock)
        job = await finished_job(store, clock)
        seen: list[bytes] = []
        original = sink.send_result

        async def keep_thumbnail(job: Job, result: Result) -> int | None:
            if result.thumbnail is not None:
                seen.append(result.thumbnail.read_bytes())
            return await original(job, result)

        sink.send_result = keep_thumbnail  # type: ignore[method-assign]
        await deliverer.job_finished(job)
        await deliverer.tasks.drain()
    (thumbnail,) = seen
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"
