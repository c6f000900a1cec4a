"""The client against the simulator over real sockets, in every backend profile, with every request
and (for the reference profile) every response checked against the OpenAPI contract."""

from __future__ import annotations

import asyncio
import io
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from bot.api.adoption import CreateSearch, JobMatch
from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.errors import (
    AuthenticationError,
    BadRequestError,
    CreateOutcomeUnknown,
    NotFoundError,
    UnsupportedOperation,
)
from bot.api.models import CreateVideo, Phase, ReferenceImage, Video
from bot.api.profiles import DEFAULT_AUTH_HEADERS, PROFILE_NAMES, PROFILES, ProfileName
from bot.sim import SimClock, SimConfig, SimServer
from tests.spec import SpecChecker

KEY = "sk-sim-test"
REQUEST = CreateVideo(prompt="a fox in the snow", model="sora-2", seconds="4", size="1280x720")
MATCH = JobMatch(prompt=REQUEST.prompt, model="sora-2", size="1280x720", seconds="4")


async def _no_sleep(_: float) -> None:
    return None


class Rig:
    """A simulator on a controllable clock and a client wired to it through the contract checker."""

    def __init__(self, profile: ProfileName = "openai", **config: object) -> None:
        # A prepared clip: these tests read a video's size and container, never its frames.
        config.setdefault("clip", "prepared")
        self.clock = SimClock()
        self.sim = SimServer(
            SimConfig(profile=profile, job_seconds=8.0, api_key=KEY, **config),  # type: ignore[arg-type]
            clock=self.clock.now,
        )
        self.profile = profile
        self.checker = SpecChecker()
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(2.0, connect=1.0), event_hooks=self.checker.event_hooks()
        )
        self.client: VideosClient

    async def __aenter__(self) -> Rig:
        url = await self.sim.start()
        caps = PROFILES[self.profile]
        self.client = VideosClient(
            self.http,
            ClientConfig(
                base_url=url,
                api_key=SecretStr(KEY),
                auth_header=DEFAULT_AUTH_HEADERS[self.profile],
                capabilities=caps,
                extra_headers=dict(caps.list_headers),
            ),
            sleep=_no_sleep,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()
        await self.sim.stop()

    async def finish(self, video: Video) -> Video:
        """Run the job's clock past its end and poll until the simulator reports it done."""
        self.clock.advance(60)
        for _ in range(200):
            video = await self.client.retrieve(video.id)
            if video.phase is not Phase.RUNNING:
                return video
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {video.id} never finished: {video.status}")


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


async def test_every_operation_conforms_to_the_contract(rig: Rig, tmp_path: Path) -> None:
    client = rig.client
    created = await client.create(REQUEST)
    assert created.status == "queued"
    assert created.seconds == "4"
    rig.clock.advance(4)
    running = await client.retrieve(created.id)
    assert running.status == "in_progress"
    assert running.progress is not None
    assert 0 < running.progress < 100
    done = await rig.finish(created)
    assert done.status == "completed"
    assert done.expires_at is not None

    dest = tmp_path / "fox.mp4"
    size = await client.download(done.id, dest)
    assert size == dest.stat().st_size
    with av.open(str(dest)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
    await client.download(done.id, tmp_path / "t.webp", variant="thumbnail")
    await client.download(done.id, tmp_path / "s.jpg", variant="spritesheet")
    with Image.open(tmp_path / "t.webp") as thumb, Image.open(tmp_path / "s.jpg") as sheet:
        assert (thumb.format, sheet.format) == ("WEBP", "JPEG")

    with_ref = await client.create(
        REQUEST.model_copy(update={"size": "720x1280"}),
        ReferenceImage(data=png(720, 1280), filename="ref.png", content_type="image/png"),
    )
    remix = await client.remix(done.id, "the same fox, at night")
    assert remix.remixed_from_video_id == done.id
    edit = await client.edit(done.id, "make it snow harder")
    extension = await client.extend(done.id, "the fox runs off", "4")

    page = await client.list(limit=2, order="desc")
    assert [v.id for v in page.data] == [extension.id, edit.id]
    assert page.has_more is True
    listed = [v.id async for v in client.iter_videos(page_size=2)]
    assert listed == [extension.id, edit.id, remix.id, with_ref.id, created.id]

    deleted = await client.delete(with_ref.id)
    assert deleted.id == with_ref.id
    assert deleted.deleted is True
    with pytest.raises(NotFoundError):
        await client.retrieve(with_ref.id)

    rig.checker.assert_clean()
    assert rig.checker.responses_checked >= 15


async def test_validation_errors_map_to_bad_request_with_param(rig: Rig) -> None:
    with pytest.raises(BadRequestError) as bad_size:
        await rig.client.create(REQUEST.model_copy(update={"size": "640x480"}))
    assert bad_size.value.param == "size"
    with pytest.raises(BadRequestError) as bad_ref:
        await rig.client.create(
            REQUEST, ReferenceImage(data=png(640, 480), filename="r.png", content_type="image/png")
        )
    assert bad_ref.value.param == "input_reference"
    assert "must match the requested width and height" in bad_ref.value.message
    assert rig.sim.videos == {}
    # The checker sees the out-of-contract size the test sent on purpose, and nothing else.
    assert len(rig.checker.problems) == 1
    assert "'640x480' is not one of" in rig.checker.problems[0]


async def test_a_wrong_key_is_an_authentication_error_that_does_not_echo_the_key() -> None:
    async with Rig() as r:
        r.sim.config.api_key = "sk-other"
        with pytest.raises(AuthenticationError) as err:
            await r.client.retrieve("video_123")
    assert KEY not in str(err.value)
    assert KEY not in repr(err.value)


async def test_unknown_video_is_not_found(rig: Rig) -> None:
    with pytest.raises(NotFoundError):
        await rig.client.retrieve("video_does_not_exist")


def _count(sim: SimServer, method: str, path: str) -> int:
    return sum(1 for r in sim.requests if r.method == method and r.path == path)


@pytest.mark.parametrize("fault", ["429", "500", "503", "drop"])
async def test_a_get_is_retried_after_a_transient_fault(rig: Rig, fault: str) -> None:
    created = await rig.client.create(REQUEST)
    rig.sim.inject("GET /videos/{id}", fault, times=2)  # type: ignore[arg-type]
    fetched = await rig.client.retrieve(created.id)
    assert fetched.id == created.id
    assert _count(rig.sim, "GET", f"/v1/videos/{created.id}") == 3


async def test_a_create_answered_429_is_sent_again_and_makes_one_job(rig: Rig) -> None:
    rig.sim.inject("POST /videos", "429")
    created = await rig.client.create(REQUEST)
    assert list(rig.sim.videos) == [created.id]
    assert _count(rig.sim, "POST", "/v1/videos") == 2


async def _lost_then_found(rig: Rig) -> CreateSearch:
    """Send REQUEST, expect its answer to be lost, and look for its job as a caller would."""
    with pytest.raises(CreateOutcomeUnknown) as info:
        await rig.client.create(REQUEST)
    return await rig.client.find_created(MATCH, since=info.value.attempted_at)


@pytest.mark.parametrize("fault", ["500_after_action", "drop_after_action"])
async def test_an_ambiguous_create_is_found_not_repeated(rig: Rig, fault: str) -> None:
    rig.sim.inject("POST /videos", fault)  # type: ignore[arg-type]
    found = await _lost_then_found(rig)
    assert found.video is not None and not found.ambiguous
    assert list(rig.sim.videos) == [found.video.id]
    assert _count(rig.sim, "POST", "/v1/videos") == 1


async def test_a_create_that_times_out_after_acting_is_found() -> None:
    async with Rig() as r:
        r.sim.inject("POST /videos", "hang_after_action")
        r.http.timeout = httpx.Timeout(0.5, connect=1.0)
        found = await _lost_then_found(r)
        assert found.video is not None
        assert list(r.sim.videos) == [found.video.id]
        assert _count(r.sim, "POST", "/v1/videos") == 1


async def test_a_create_lost_before_acting_is_reported_unknown_and_not_resent(rig: Rig) -> None:
    rig.sim.inject("POST /videos", "500")
    assert await _lost_then_found(rig) == CreateSearch(None, ambiguous=False)
    assert rig.sim.videos == {}
    assert _count(rig.sim, "POST", "/v1/videos") == 1


@pytest.mark.parametrize("profile", [p for p in PROFILE_NAMES if PROFILES[p].list])
async def test_a_lost_create_answer_is_found_in_every_profile_that_lists(
    profile: ProfileName,
) -> None:
    async with Rig(profile) as r:
        r.sim.inject("POST /videos", "500_after_action")
        found = await _lost_then_found(r)
        assert found.video is not None, found
        assert list(r.sim.videos) == [found.video.id]
        assert _count(r.sim, "POST", "/v1/videos") == 1


async def test_another_requests_job_is_never_adopted(rig: Rig) -> None:
    # Another member's identical request got its answer: its job is owned, so the lost one
    # is "not found" rather than someone else's video.
    theirs = await rig.client.create(REQUEST)
    rig.sim.inject("POST /videos", "500")
    with pytest.raises(CreateOutcomeUnknown) as info:
        await rig.client.create(REQUEST)
    search = await rig.client.find_created(
        MATCH, since=info.value.attempted_at, exclude_ids={theirs.id}
    )
    assert search == CreateSearch(None, ambiguous=False)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
async def test_the_client_completes_a_job_in_every_profile(
    profile: ProfileName, tmp_path: Path
) -> None:
    async with Rig(profile) as r:
        caps = r.client.caps
        created = await r.client.create(REQUEST)
        seen_progress: list[int | None] = []
        for _ in range(3):
            r.clock.advance(2)
            seen_progress.append((await r.client.retrieve(created.id)).progress)
        done = await r.finish(created)
        assert done.phase is Phase.COMPLETED
        if not caps.progress:
            # Nothing between the start and the end: no bar to draw.
            assert all(p in (None, 0) for p in seen_progress)
        await r.client.download(done.id, tmp_path / "v.mp4")
        with av.open(str(tmp_path / "v.mp4")) as container:
            assert container.streams.video[0].codec_context.width == 1280
        if caps.list:
            listed = [v.id async for v in r.client.iter_videos(page_size=1)]
            assert listed == [created.id]
        if caps.remix:
            assert (await r.client.remix(done.id, "again")).remixed_from_video_id == done.id
        else:
            with pytest.raises(UnsupportedOperation):
                await r.client.remix(done.id, "again")
        if caps.delete:
            deleted = await r.client.delete(done.id)
            assert deleted.id == done.id
            with pytest.raises(NotFoundError):
                await r.client.retrieve(done.id)
        else:
            with pytest.raises(UnsupportedOperation):
                await r.client.delete(done.id)
        # Whatever the server's quirks, what the client sends always conforms.
        request_problems = [
            p
            for p in r.checker.problems
            if p.startswith("request")
            # The contract knows only Bearer auth; Azure's `api-key` header is its own scheme.
            and not (profile == "azure" and "SecurityValidationError" in p)
        ]
        assert request_problems == []
        if profile == "openai":
            r.checker.assert_clean()


async def test_expired_assets_are_not_found(tmp_path: Path) -> None:
    async with Rig(retention_seconds=100.0) as r:
        done = await r.finish(await r.client.create(REQUEST))
        r.clock.advance(101)
        assert (await r.client.retrieve(done.id)).status == "expired"
        with pytest.raises(NotFoundError):
            await r.client.download(done.id, tmp_path / "late.mp4")
        assert not (tmp_path / "late.mp4").exists()


async def test_a_large_video_streams_to_disk_with_flat_memory(tmp_path: Path) -> None:
    big = 64 * 1024 * 1024
    async with Rig(pad_video_bytes=big) as r:
        done = await r.finish(await r.client.create(REQUEST))
        dest = tmp_path / "big.mp4"
        tracemalloc.start()
        try:
            size = await r.client.download(done.id, dest)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert size == dest.stat().st_size > big
    # The client never holds the body: its peak is a small fraction of what it wrote.
    assert peak < 8 * 1024 * 1024, peak
    # Still a playable mp4 (the padding is an mp4 `free` box).
    with av.open(str(dest)) as container:
        assert container.streams.video[0].codec_context.width == 1280
