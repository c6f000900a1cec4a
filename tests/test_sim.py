"""The simulated Videos API over real loopback sockets: auth, validation, the job lifecycle on a
hand-moved clock, real media, paging, remix/edit/extend, each profile's quirks, fault injection,
the embedded form the bot uses and the `python -m videobot sim` command."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from bot.sim import ROUTES, EmbeddedSim, SimClock, SimConfig, SimServer, add_sim_arguments
from bot.sim import media as sim_media
from bot.sim.cli import SimArgumentError, resolve_options

KEY = "sk-sim-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
VIDEO_KEYS = {
    "id",
    "object",
    "model",
    "status",
    "progress",
    "created_at",
    "completed_at",
    "expires_at",
    "prompt",
    "size",
    "seconds",
    "remixed_from_video_id",
    "error",
}
SIZE_MISMATCH = "Inpaint image must match the requested width and height"


class Api:
    """A running simulator on a hand-moved clock and an httpx client authorised for it."""

    def __init__(self, sim: SimServer, clock: SimClock, http: httpx.AsyncClient) -> None:
        self.sim = sim
        self.clock = clock
        self.http = http

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"prompt": "a fox in the snow", **fields}
        response = await self.http.post("/videos", json=body)
        assert response.status_code == 200, response.text
        created: dict[str, Any] = response.json()
        return created

    async def get(self, video_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/videos/{video_id}")
        assert response.status_code == 200, response.text
        video: dict[str, Any] = response.json()
        return video

    async def finish(self, video_id: str) -> dict[str, Any]:
        """Move the clock past the job's end, wait for its render and read it."""
        self.clock.advance(self.sim.config.job_seconds + 1)
        await self.sim.settle()
        return await self.get(video_id)


@contextlib.asynccontextmanager
async def running(clock: SimClock | None = None, **config: Any) -> AsyncIterator[Api]:
    clock = clock or SimClock()
    sim = SimServer(replace(SimConfig(job_seconds=10.0, fps=4), **config), clock=clock)
    url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=15.0) as http:
            yield Api(sim, clock, http)
    finally:
        await sim.stop()


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running() as a:
        yield a


def image_bytes(width: int, height: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 140, 90)).save(buf, fmt)
    return buf.getvalue()


def clips(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.mp4"))


def envelope(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


# ---------------------------------------------------------------------- auth


async def test_a_request_without_a_key_is_401(api: Api) -> None:
    response = await api.http.get("/videos", headers={"Authorization": ""})
    assert response.status_code == 401
    error = envelope(response)
    assert error["type"] == "invalid_request_error"
    assert "API key" in error["message"]
    for value in ("Bearer", "Basic dXNlcjpwYXNz"):
        refused = await api.http.get("/videos", headers={"Authorization": value})
        assert refused.status_code == 401, value


async def test_any_key_is_accepted_as_bearer_or_api_key_header_when_none_is_configured(
    api: Api,
) -> None:
    bearer = await api.http.get("/videos", headers={"Authorization": "Bearer whatever"})
    assert bearer.status_code == 200
    azure = await api.http.get("/videos", headers={"Authorization": "", "api-key": "k"})
    assert azure.status_code == 200


async def test_a_configured_key_refuses_others_without_echoing_them() -> None:
    async with running(api_key=KEY) as a:
        assert (await a.http.get("/videos")).status_code == 200
        wrong = await a.http.get("/videos", headers={"Authorization": "Bearer sk-wrong-123"})
        assert wrong.status_code == 401
        error = envelope(wrong)
        assert error["code"] == "invalid_api_key"
        assert "sk-wrong-123" not in wrong.text
        azure = await a.http.get("/videos", headers={"Authorization": "", "api-key": KEY})
        assert azure.status_code == 200
        content = await a.http.get("/videos/video_x/content", headers={"Authorization": ""})
        assert content.status_code == 401


async def test_an_unknown_route_is_a_404_envelope(api: Api) -> None:
    response = await api.http.get("/nothing/here")
    assert response.status_code == 404
    assert envelope(response)["message"] == "Invalid URL (GET /v1/nothing/here)"


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "prompt", "missing_required_parameter"),
        ({"prompt": ""}, "prompt", "string_below_min_length"),
        ({"prompt": "x" * 32001}, "prompt", "string_above_max_length"),
        ({"prompt": 42}, "prompt", "invalid_type"),
        ({"prompt": "a", "seconds": 8}, "seconds", "invalid_type"),
        ({"prompt": "a", "seconds": "5"}, "seconds", "invalid_value"),
        ({"prompt": "a", "size": "640x480"}, "size", "invalid_value"),
        ({"prompt": "a", "size": 1280}, "size", "invalid_type"),
        ({"prompt": "a", "model": ""}, "model", "string_below_min_length"),
        ({"prompt": "a", "n": 2}, "n", "unknown_parameter"),
        ({"prompt": "a", "input_reference": "x"}, "input_reference", "invalid_type"),
    ],
)
async def test_create_validation_errors_name_the_param(
    api: Api, body: dict[str, Any], param: str, code: str
) -> None:
    response = await api.http.post("/videos", json=body)
    assert response.status_code == 400
    error = envelope(response)
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert api.sim.videos == {}


async def test_seconds_as_a_number_is_refused_with_the_allowed_strings(api: Api) -> None:
    response = await api.http.post("/videos", json={"prompt": "a", "seconds": 4})
    message = envelope(response)["message"]
    assert "'4', '8', or '12'" in message
    assert "an integer" in message


async def test_malformed_json_and_non_object_bodies_are_400(api: Api) -> None:
    bad = await api.http.post(
        "/videos", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    assert "could not parse the JSON body" in envelope(bad)["message"]
    array = await api.http.post("/videos", json=["a"])
    assert array.status_code == 400
    assert envelope(array)["code"] == "invalid_type"
    text = await api.http.post("/videos", content=b"a", headers={"Content-Type": "text/plain"})
    assert text.status_code == 400
    assert api.sim.videos == {}


async def test_the_longest_prompt_and_any_model_string_are_accepted(api: Api) -> None:
    video = await api.create(prompt="y" * 32000, model="my-own-model", seconds="8", size="1280x720")
    assert (video["model"], video["seconds"], video["size"]) == ("my-own-model", "8", "1280x720")
    defaults = await api.create()
    assert (defaults["model"], defaults["seconds"], defaults["size"]) == ("sora-2", "4", "720x1280")


@pytest.mark.parametrize(
    ("fmt", "declared", "stored"),
    [
        ("JPEG", "image/jpeg", "image/jpeg"),
        ("PNG", "image/png", "image/png"),
        ("WEBP", "image/webp", "image/webp"),
        ("PNG", "application/octet-stream", "image/png"),
    ],
)
async def test_a_reference_image_of_the_requested_size_is_accepted(
    api: Api, fmt: str, declared: str, stored: str
) -> None:
    data = image_bytes(1280, 720, fmt)
    response = await api.http.post(
        "/videos",
        data={"prompt": "from a photo", "size": "1280x720", "seconds": "4"},
        files={"input_reference": ("ref.img", data, declared)},
    )
    assert response.status_code == 200, response.text
    video = api.sim.videos[response.json()["id"]]
    assert video.reference == data
    assert video.reference_content_type == stored
    logged = api.sim.requests[-1]
    assert logged.files == {"input_reference": declared}
    assert sorted(logged.form_fields) == ["prompt", "seconds", "size"]


@pytest.mark.parametrize(
    ("data", "declared", "size", "message"),
    [
        (image_bytes(1280, 720, "PNG"), "image/png", "720x1280", SIZE_MISMATCH),
        (image_bytes(640, 480, "JPEG"), "image/jpeg", None, SIZE_MISMATCH),
        (b"just some words", "text/plain", "1280x720", "unsupported mimetype ('text/plain')"),
        (b"just some words", "image/png", "1280x720", "could not be read"),
        (image_bytes(1280, 720, "GIF"), "image/gif", "1280x720", "unsupported mimetype"),
        (image_bytes(1280, 720, "BMP"), "application/octet-stream", "1280x720", "'image/bmp'"),
    ],
)
async def test_a_wrong_reference_is_refused(
    api: Api, data: bytes, declared: str, size: str | None, message: str
) -> None:
    form = {"prompt": "from a photo", **({"size": size} if size else {})}
    response = await api.http.post(
        "/videos", data=form, files={"input_reference": ("ref", data, declared)}
    )
    assert response.status_code == 400
    error = envelope(response)
    assert error["param"] == "input_reference"
    assert message in error["message"]
    if message == SIZE_MISMATCH:
        assert error["message"] == SIZE_MISMATCH
    assert api.sim.videos == {}


async def test_a_json_reference_may_be_a_data_url_but_not_a_remote_one(api: Api) -> None:
    encoded = base64.b64encode(image_bytes(720, 1280, "PNG")).decode()
    ok = await api.http.post(
        "/videos",
        json={
            "prompt": "p",
            "input_reference": {"image_url": f"data:image/png;base64,{encoded}"},
        },
    )
    assert ok.status_code == 200, ok.text
    assert api.sim.videos[ok.json()["id"]].reference_content_type == "image/png"
    remote = await api.http.post(
        "/videos",
        json={"prompt": "p", "input_reference": {"image_url": "https://example.com/a.png"}},
    )
    assert remote.status_code == 400
    assert envelope(remote)["param"] == "input_reference"


# ---------------------------------------------------------------------- lifecycle


async def test_a_job_goes_queued_in_progress_completed_with_rising_progress(api: Api) -> None:
    created = await api.create(size="1280x720")
    assert set(created) == VIDEO_KEYS
    assert re.fullmatch(r"video_[0-9a-f]{48}", created["id"])
    assert created["object"] == "video"
    assert (created["status"], created["progress"]) == ("queued", 0)
    assert created["created_at"] == int(api.clock.now())
    assert created["completed_at"] is None and created["expires_at"] is None
    assert created["error"] is None and created["remixed_from_video_id"] is None

    api.clock.advance(0.5)
    assert (await api.get(created["id"]))["status"] == "queued"
    seen = []
    for _ in range(4):
        api.clock.advance(2)
        video = await api.get(created["id"])
        assert video["status"] == "in_progress"
        seen.append(video["progress"])
    assert seen == sorted(seen) and len(set(seen)) == 4
    assert 0 < seen[0] < seen[-1] < 100

    done = await api.finish(created["id"])
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["completed_at"] == int(api.sim.videos[created["id"]].completed_at or 0)
    assert done["completed_at"] >= created["created_at"] + 10
    assert done["expires_at"] == done["completed_at"] + 3600
    assert api.sim.videos[created["id"]].status == "completed"


async def test_a_job_reports_99_percent_until_its_media_exists(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_render = sim_media.render_all

    def slow_render(*args: Any) -> dict[str, Path]:
        release.wait(10)
        return real_render(*args)

    monkeypatch.setattr(sim_media, "render_all", slow_render)
    created = await api.create()
    api.clock.advance(60)
    waiting = await api.get(created["id"])
    assert (waiting["status"], waiting["progress"]) == ("in_progress", 99)
    assert (await api.http.get(f"/videos/{created['id']}/content")).status_code == 404
    release.set()
    await api.sim.settle()
    done = await api.get(created["id"])
    assert done["status"] == "completed"
    # Completion is stamped when the media was ready, after the job's nominal end.
    assert done["completed_at"] == int(api.clock.now())


async def test_a_failed_render_fails_the_jobs_waiting_on_it(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_render(*args: Any) -> dict[str, Path]:
        raise OSError("disk full")

    monkeypatch.setattr(sim_media, "render_all", broken_render)
    first = await api.create(prompt="the same shot")
    second = await api.create(prompt="the same shot")
    await api.sim.settle()
    assert "simulated render failed" in caplog.text
    api.clock.advance(api.sim.config.job_seconds + 1)
    for created in (first, second):
        failed = await api.get(created["id"])
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "internal_error"
    # A later job of the same clip renders it again.
    monkeypatch.undo()
    third = await api.create(prompt="the same shot")
    assert (await api.finish(third["id"]))["status"] == "completed"


async def test_a_clip_removed_from_the_cache_is_rendered_again_on_download(
    tmp_path: Path,
) -> None:
    async with running(cache_dir=tmp_path / "cache") as a:
        created = await a.create()
        await a.finish(created["id"])
        first = await a.http.get(f"/videos/{created['id']}/content")
        [clip] = clips(tmp_path / "cache")
        clip.unlink()
        again = await a.http.get(f"/videos/{created['id']}/content")
        assert again.status_code == 200
        assert again.content == first.content
        assert clips(tmp_path / "cache") == [clip]


async def test_a_share_of_jobs_fail_with_the_configured_code() -> None:
    async with running(fail_rate=1.0, fail_code="internal_error", fail_message="boom") as a:
        created = await a.create()
        assert created["status"] == "queued"
        a.clock.advance(2)
        assert (await a.get(created["id"]))["status"] == "in_progress"
        a.clock.advance(20)
        failed = await a.get(created["id"])
        assert failed["status"] == "failed"
        assert failed["error"] == {"code": "internal_error", "message": "boom"}
        assert failed["completed_at"] is None
        content = await a.http.get(f"/videos/{created['id']}/content")
        assert content.status_code == 404
        # A failing job never renders anything.
        assert len(a.sim.jobs.renders) == 0


async def test_the_moderation_word_fails_a_job_once_it_runs() -> None:
    async with running(moderation_word="forbidden") as a:
        bad = await a.create(prompt="something FoRbIdDeN here")
        good = await a.create(prompt="a calm lake")
        assert bad["status"] == "queued"
        a.clock.advance(20)
        await a.sim.settle()
        failed = await a.get(bad["id"])
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "moderation_blocked"
        assert (await a.get(good["id"]))["status"] == "completed"


async def test_assets_expire_after_the_retention() -> None:
    async with running(retention_seconds=100.0) as a:
        created = await a.create()
        done = await a.finish(created["id"])
        assert (await a.http.get(f"/videos/{created['id']}/content")).status_code == 200
        a.clock.advance(98)
        assert (await a.get(created["id"]))["status"] == "completed"
        a.clock.advance(2)
        expired = await a.get(created["id"])
        assert expired["status"] == "expired"
        assert expired["expires_at"] == done["expires_at"]
        content = await a.http.get(f"/videos/{created['id']}/content")
        assert content.status_code == 404
        assert envelope(content)["code"] == "expired"


async def test_a_job_with_no_duration_completes_once_rendered() -> None:
    async with running(job_seconds=0.0) as a:
        created = await a.create()
        assert created["status"] == "queued"
        await a.sim.settle()
        assert (await a.get(created["id"]))["status"] == "completed"


# ---------------------------------------------------------------------- content


async def test_content_is_a_playable_mp4_with_a_webp_thumbnail_and_jpg_spritesheet(
    tmp_path: Path,
) -> None:
    async with running(fps=12) as a:
        created = await a.create(size="1280x720", seconds="4")
        not_yet = await a.http.get(f"/videos/{created['id']}/content")
        assert not_yet.status_code == 404
        assert envelope(not_yet)["code"] == "video_not_ready"
        await a.finish(created["id"])
        bodies: dict[str, bytes] = {}
        for variant, ctype in [
            (None, "video/mp4"),
            ("video", "video/mp4"),
            ("thumbnail", "image/webp"),
            ("spritesheet", "image/jpeg"),
        ]:
            params = {"variant": variant} if variant else {}
            response = await a.http.get(f"/videos/{created['id']}/content", params=params)
            assert response.status_code == 200
            assert response.headers["content-type"] == ctype
            assert int(response.headers["content-length"]) == len(response.content)
            bodies[variant or "default"] = response.content
        assert bodies["default"] == bodies["video"]
        bad = await a.http.get(f"/videos/{created['id']}/content", params={"variant": "gif"})
        assert bad.status_code == 400
        assert envelope(bad)["param"] == "variant"

    path = tmp_path / "v.mp4"
    path.write_bytes(bodies["video"])
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert container.duration is not None
        assert abs(container.duration / av.time_base - 4) <= 1 / 12
        frames = [f for f in container.decode(video=0)]
        assert len(frames) == 4 * 12
        assert frames[0].format.name == "yuv420p"
        # The picture moves: the first and last frames differ.
        assert bytes(frames[0].planes[0]) != bytes(frames[-1].planes[0])
    with Image.open(io.BytesIO(bodies["thumbnail"])) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (1280, 720))
    with Image.open(io.BytesIO(bodies["spritesheet"])) as sheet:
        assert sheet.format == "JPEG"
        tile_h = round(720 * sim_media.SPRITE_TILE_WIDTH / 1280)
        assert sheet.size == (
            sim_media.SPRITE_TILE_WIDTH * sim_media.SPRITE_COLUMNS,
            tile_h * sim_media.SPRITE_ROWS,
        )


async def two_clips(clip: str) -> tuple[list[bytes], list[bytes]]:
    """Two finished jobs with different prompts: their videos and thumbnails, as served."""
    async with running(clip=clip) as a:
        ids = [(await a.create(prompt=p, size="720x1280", seconds="4"))["id"] for p in "AB"]
        a.clock.advance(a.sim.config.job_seconds + 1)
        await a.sim.settle()
        videos: list[bytes] = []
        thumbs: list[bytes] = []
        for video_id in ids:
            assert (await a.get(video_id))["status"] == "completed"
            video = await a.http.get(f"/videos/{video_id}/content")
            assert video.status_code == 200
            assert int(video.headers["content-length"]) == len(video.content)
            videos.append(video.content)
            thumb = await a.http.get(f"/videos/{video_id}/content?variant=thumbnail")
            assert thumb.headers["content-type"] == "image/webp"
            thumbs.append(thumb.content)
        return videos, thumbs


async def test_a_prepared_clip_is_one_playable_mp4_for_every_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    videos, thumbs = await two_clips("prepared")
    assert videos[0] == videos[1] and thumbs[0] == thumbs[1]
    path = tmp_path / "prepared.mp4"
    path.write_bytes(videos[0])
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (720, 1280)
        assert container.duration is not None
        assert abs(container.duration / av.time_base - 4) <= 1 / 4
        assert sum(1 for _ in container.decode(video=0)) == 4 * 4
    with Image.open(io.BytesIO(thumbs[0])) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (720, 1280))
    # Another server in the same process serves the very same clip without rendering it again.
    renders: list[tuple[Any, ...]] = []
    real_render = sim_media.render_all

    def counted(*args: Any) -> dict[str, Path]:
        renders.append(args)
        return real_render(*args)

    monkeypatch.setattr(sim_media, "render_all", counted)
    again, _ = await two_clips("prepared")
    assert again[0] == videos[0] and renders == []
    # Rendered per prompt, the two differ.
    rendered, rendered_thumbs = await two_clips("render")
    assert rendered[0] != rendered[1] and rendered_thumbs[0] != rendered_thumbs[1]
    assert len(renders) == 2


async def test_content_of_an_unknown_video_is_404(api: Api) -> None:
    response = await api.http.get("/videos/video_nope/content")
    assert response.status_code == 404
    assert "video_nope" in envelope(response)["message"]
    assert (await api.http.get("/videos/video_nope")).status_code == 404


def test_a_full_size_render_has_every_frame_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "big.mp4"
    started = time.monotonic()
    sim_media.render_video(target, 1792, 1024, 4, 6, "a wide shot")
    elapsed = time.monotonic() - started
    assert elapsed < 60
    assert [p.name for p in tmp_path.iterdir()] == ["big.mp4"]
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1792, 1024)
        assert sum(1 for _ in container.decode(video=0)) == 24


def test_render_refuses_odd_sizes_and_spreads_sprites_over_the_clip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        sim_media.render_video(tmp_path / "x.mp4", 721, 1280, 4, 6, "odd")
    assert not list(tmp_path.iterdir())
    assert sim_media.sprite_indices(48) == [0, 5, 10, 16, 21, 26, 31, 37, 42, 47]
    assert sim_media.sprite_indices(3) == [0, 1, 2]


async def test_media_is_rendered_once_per_clip_and_reused_from_the_cache(tmp_path: Path) -> None:
    async with running(cache_dir=tmp_path) as a:
        first = await a.create(prompt="same clip")
        second = await a.create(prompt="same clip")
        await a.finish(first["id"])
        assert (await a.get(second["id"]))["status"] == "completed"
        (clip,) = clips(tmp_path)
        stamp = clip.stat().st_mtime_ns
    async with running(cache_dir=tmp_path) as b:
        again = await b.create(prompt="same clip")
        await b.finish(again["id"])
        assert clip.stat().st_mtime_ns == stamp
        assert (await b.http.get(f"/videos/{again['id']}/content")).content == clip.read_bytes()


# ---------------------------------------------------------------------- list and delete


async def test_list_pages_with_after_limit_order_and_has_more(api: Api) -> None:
    ids = [(await api.create(prompt=f"clip {i}"))["id"] for i in range(5)]
    newest_first = ids[::-1]

    page = (await api.http.get("/videos", params={"limit": 2})).json()
    assert page["object"] == "list"
    assert [v["id"] for v in page["data"]] == newest_first[:2]
    assert (page["first_id"], page["last_id"], page["has_more"]) == (
        newest_first[0],
        newest_first[1],
        True,
    )
    for video in page["data"]:
        assert set(video) == VIDEO_KEYS

    page2 = (await api.http.get("/videos", params={"limit": 2, "after": page["last_id"]})).json()
    assert [v["id"] for v in page2["data"]] == newest_first[2:4]
    assert page2["has_more"] is True
    page3 = (await api.http.get("/videos", params={"limit": 2, "after": page2["last_id"]})).json()
    assert [v["id"] for v in page3["data"]] == newest_first[4:]
    assert page3["has_more"] is False

    asc = (await api.http.get("/videos", params={"order": "asc", "limit": 3})).json()
    assert [v["id"] for v in asc["data"]] == ids[:3]
    everything = (await api.http.get("/videos")).json()
    assert [v["id"] for v in everything["data"]] == newest_first
    assert everything["has_more"] is False

    empty = (await api.http.get("/videos", params={"limit": 0})).json()
    assert (empty["data"], empty["first_id"], empty["last_id"]) == ([], None, None)
    assert empty["has_more"] is True


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "newest"}, "order"),
        ({"after": "video_unknown"}, "after"),
    ],
)
async def test_bad_list_parameters_are_400(api: Api, params: dict[str, str], param: str) -> None:
    response = await api.http.get("/videos", params=params)
    assert response.status_code == 400
    assert envelope(response)["param"] == param


async def test_delete_removes_the_video_but_its_id_still_pages(api: Api) -> None:
    ids = [(await api.create(prompt=f"clip {i}"))["id"] for i in range(3)]
    response = await api.http.delete(f"/videos/{ids[1]}")
    assert response.status_code == 200
    assert response.json() == {"id": ids[1], "object": "video.deleted", "deleted": True}
    assert ids[1] not in api.sim.videos
    assert (await api.http.get(f"/videos/{ids[1]}")).status_code == 404
    assert (await api.http.delete(f"/videos/{ids[1]}")).status_code == 404
    listed = (await api.http.get("/videos")).json()
    assert [v["id"] for v in listed["data"]] == [ids[2], ids[0]]
    after_deleted = (await api.http.get("/videos", params={"after": ids[1]})).json()
    assert [v["id"] for v in after_deleted["data"]] == [ids[0]]


# ---------------------------------------------------------------------- remix, edit, extend


async def test_remix_edit_and_extend_make_new_jobs_from_a_completed_video(api: Api) -> None:
    source = await api.create(model="sora-2-pro", size="1280x720", seconds="4")
    early = await api.http.post(f"/videos/{source['id']}/remix", json={"prompt": "at night"})
    assert early.status_code == 400
    await api.finish(source["id"])

    remix = await api.http.post(f"/videos/{source['id']}/remix", json={"prompt": "at night"})
    assert remix.status_code == 200, remix.text
    r = remix.json()
    assert (r["remixed_from_video_id"], r["prompt"], r["status"]) == (
        source["id"],
        "at night",
        "queued",
    )
    assert (r["model"], r["size"], r["seconds"]) == ("sora-2-pro", "1280x720", "4")

    edit = await api.http.post(
        "/videos/edits", json={"video": {"id": source["id"]}, "prompt": "more snow"}
    )
    assert edit.status_code == 200, edit.text
    e = edit.json()
    assert (e["prompt"], e["seconds"], e["remixed_from_video_id"]) == ("more snow", "4", None)
    assert api.sim.videos[e["id"]].source_video_id == source["id"]

    extend = await api.http.post(
        "/videos/extensions",
        json={"video": {"id": source["id"]}, "prompt": "it runs off", "seconds": "8"},
    )
    assert extend.status_code == 200, extend.text
    x = extend.json()
    assert (x["seconds"], x["size"]) == ("12", "1280x720")
    assert api.sim.videos[x["id"]].kind == "extension"

    done = await api.finish(x["id"])
    assert done["status"] == "completed"
    clip = await api.http.get(f"/videos/{x['id']}/content")
    with av.open(io.BytesIO(clip.content), "r") as container:
        assert container.duration is not None
        assert abs(container.duration / av.time_base - 12) <= 0.25


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/videos/video_none/remix", {"prompt": "p"}, 404, "video_id"),
        ("/videos/edits", {"prompt": "p"}, 400, "video"),
        ("/videos/edits", {"video": {}, "prompt": "p"}, 400, "video.id"),
        ("/videos/edits", {"video": "video_1", "prompt": "p"}, 400, "video"),
        ("/videos/edits", {"video": {"id": "video_none"}, "prompt": "p"}, 404, "video_id"),
        ("/videos/extensions", {"video": {"id": "SRC"}, "prompt": "p"}, 400, "seconds"),
        (
            "/videos/extensions",
            {"video": {"id": "SRC"}, "prompt": "p", "seconds": 4},
            400,
            "seconds",
        ),
        (
            "/videos/extensions",
            {"video": {"id": "SRC"}, "prompt": "p", "seconds": "5"},
            400,
            "seconds",
        ),
        ("/videos/SRC/remix", {"prompt": ""}, 400, "prompt"),
        ("/videos/SRC/remix", {"prompt": "p", "seconds": "4"}, 400, "seconds"),
    ],
)
async def test_derived_jobs_validate_their_input(
    api: Api, path: str, body: dict[str, Any], status: int, param: str
) -> None:
    source = await api.create()
    await api.finish(source["id"])
    if isinstance(body.get("video"), dict) and body["video"].get("id") == "SRC":
        body = {**body, "video": {"id": source["id"]}}
    response = await api.http.post(path.replace("SRC", source["id"]), json=body)
    assert response.status_code == status, response.text
    assert envelope(response)["param"] == param
    assert list(api.sim.videos) == [source["id"]]


# ---------------------------------------------------------------------- profiles


async def test_litellm_needs_a_provider_to_list_drops_variants_and_refuses_delete() -> None:
    async with running(profile="litellm") as a:
        created = await a.create()
        assert "progress" not in created
        refused = await a.http.get("/videos")
        assert refused.status_code == 400
        assert envelope(refused)["param"] == "custom-llm-provider"
        assert refused.headers["x-litellm-version"]
        listed = await a.http.get("/videos", headers={"custom-llm-provider": "openai"})
        assert [v["id"] for v in listed.json()["data"]] == [created["id"]]
        by_query = await a.http.get("/videos", params={"custom_llm_provider": "openai"})
        assert by_query.status_code == 200
        a.clock.advance(5)
        running_job = await a.get(created["id"])
        assert running_job["status"] == "processing"
        assert "progress" not in running_job
        done = await a.finish(created["id"])
        assert done["status"] == "completed" and "progress" not in done
        # `variant` is dropped: a thumbnail request answers the mp4.
        thumb = await a.http.get(
            f"/videos/{created['id']}/content", params={"variant": "thumbnail"}
        )
        assert (thumb.status_code, thumb.headers["content-type"]) == (200, "video/mp4")
        for path in ("/videos/edits", "/videos/extensions"):
            body = {"video": {"id": created["id"]}, "prompt": "p", "seconds": "4"}
            answer = await a.http.post(path, json=body)
            assert (answer.status_code, answer.json()) == (405, {"detail": "Method Not Allowed"})
        deleted = await a.http.delete(f"/videos/{created['id']}")
        assert deleted.status_code == 405
        assert created["id"] in a.sim.videos
        remix = await a.http.post(f"/videos/{created['id']}/remix", json={"prompt": "p"})
        assert remix.status_code == 200


async def test_litellm_refuses_a_model_it_does_not_serve_when_checking() -> None:
    async with running(profile="litellm", served_models=("gemini/veo-3.1",), check_model=True) as a:
        refused = await a.http.post("/videos", json={"prompt": "p", "model": "sora-2"})
        assert refused.status_code == 400
        assert "Invalid model name" in envelope(refused)["message"]
        served = await a.http.post("/videos", json={"prompt": "p", "model": "gemini/veo-3.1"})
        assert served.status_code == 200, served.text


async def test_vllm_omni_multipart_served_model_integer_codes_and_content_states() -> None:
    async with running(profile="vllm-omni", served_models=("Wan-AI/Wan2.2-T2V-A14B",)) as a:
        as_json = await a.http.post("/videos", json={"prompt": "p"})
        assert as_json.status_code == 400
        assert as_json.json()["error"]["code"] == 400
        assert a.sim.videos == {}
        form = await a.http.post(
            "/videos",
            files={"prompt": (None, "p"), "size": (None, "1280x720"), "model": (None, "sora-2")},
        )
        assert form.status_code == 200, form.text
        video = form.json()
        # The job reports the served model, not the one asked for.
        assert video["model"] == "Wan-AI/Wan2.2-T2V-A14B"
        a.clock.advance(5)
        running_job = await a.get(video["id"])
        assert (running_job["status"], running_job["progress"]) == ("in_progress", 0)
        early = await a.http.get(f"/videos/{video['id']}/content")
        assert early.status_code == 404
        assert early.json()["error"] == {
            "message": "Generation is still in-progress",
            "type": "NotFoundError",
            "param": None,
            "code": 404,
        }
        done = await a.finish(video["id"])
        assert done["progress"] == 100 and "inference_time_s" in done
        thumb = await a.http.get(f"/videos/{video['id']}/content", params={"variant": "thumbnail"})
        assert thumb.status_code == 200
        assert thumb.headers["content-type"] == "video/mp4"
        for path in (f"/videos/{video['id']}/remix", "/videos/edits", "/videos/extensions"):
            gone = await a.http.post(path, json={"prompt": "p"})
            assert (gone.status_code, gone.json()) == (404, {"detail": "Not Found"})
        models = (await a.http.get("/models")).json()
        assert [m["id"] for m in models["data"]] == ["Wan-AI/Wan2.2-T2V-A14B"]
        deleted = await a.http.delete(f"/videos/{video['id']}")
        assert deleted.json() == {"id": video["id"], "object": "video.deleted", "deleted": True}
        assert (await a.http.get(f"/videos/{video['id']}")).json()["error"]["code"] == 404


async def test_vllm_omni_fails_with_an_integer_code_and_422_content() -> None:
    async with running(profile="vllm-omni", fail_rate=1.0) as a:
        form = await a.http.post("/videos", files={"prompt": (None, "p")})
        video_id = form.json()["id"]
        a.clock.advance(a.sim.config.job_seconds)
        failed = await a.get(video_id)
        assert failed["status"] == "failed"
        assert isinstance(failed["error"]["code"], int)
        content = await a.http.get(f"/videos/{video_id}/content")
        assert content.status_code == 422


async def test_vllm_omni_refuses_another_model_in_strict_mode() -> None:
    async with running(
        profile="vllm-omni", served_models=("Wan-AI/Wan2.2",), check_model=True
    ) as a:
        refused = await a.http.post(
            "/videos", files={"prompt": (None, "p"), "model": (None, "sora-2")}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["message"].startswith("Model mismatch")


@pytest.mark.parametrize("profile", ["sglang", "fastvideo"])
async def test_sglang_and_fastvideo_never_report_in_progress_nor_echo_the_prompt(
    profile: str,
) -> None:
    async with running(profile=profile) as a:
        created = await a.create()
        assert "prompt" not in created
        statuses = []
        for _ in range(4):
            a.clock.advance(2)
            video = await a.get(created["id"])
            statuses.append((video["status"], video["progress"]))
        assert statuses == [("queued", 0)] * 4
        done = await a.finish(created["id"])
        assert (done["status"], done["progress"]) == ("completed", 100)
        assert "prompt" not in done

        for name in ("video", "thumbnail"):
            by_name = await a.http.get(f"/videos/{created['id']}/content", params={"variant": name})
            assert by_name.status_code == 404
            assert set(by_name.json()) == {"detail"}
        first = await a.http.get(f"/videos/{created['id']}/content", params={"variant": "0"})
        assert (first.status_code, first.headers["content-type"]) == (200, "video/mp4")
        second = await a.http.get(f"/videos/{created['id']}/content", params={"variant": "1"})
        assert second.status_code == 404

        listed = (await a.http.get("/videos", params={"limit": 1})).json()
        assert set(listed) == {"data"}
        assert [v["id"] for v in listed["data"]] == [created["id"]]
        for path in (f"/videos/{created['id']}/remix", "/videos/edits", "/videos/extensions"):
            assert (await a.http.post(path, json={"prompt": "p"})).status_code == 404
        missing = await a.http.get("/videos/video_nope")
        assert (missing.status_code, set(missing.json())) == (404, {"detail"})

        deleted = await a.http.delete(f"/videos/{created['id']}")
        body = deleted.json()
        assert (body["id"], body["object"], body["status"]) == (created["id"], "video", "deleted")
        assert (await a.http.get(f"/videos/{created['id']}")).status_code == 404
        models = await a.http.get("/models")
        assert models.status_code == (200 if profile == "sglang" else 404)


@pytest.mark.parametrize(
    ("profile", "config", "needs_key"),
    [
        ("fastvideo", {}, False),
        ("fastvideo", {"api_key": KEY}, False),
        ("sglang", {}, False),
        ("sglang", {"api_key": KEY}, True),
        ("vllm-omni", {}, False),
        ("vllm-omni", {"api_key": KEY}, True),
        ("openai", {}, True),
        ("openai", {"auth": False}, False),
    ],
)
async def test_self_hosted_servers_need_a_key_only_when_started_with_one(
    profile: str, config: dict[str, Any], needs_key: bool
) -> None:
    async with running(profile=profile, **config) as a:
        keyless = await a.http.get("/videos", headers={"Authorization": ""})
        assert (keyless.status_code == 401) is needs_key
        assert (await a.http.get("/videos")).status_code == 200


async def test_azure_takes_the_key_in_the_api_key_header_and_reports_the_base_model() -> None:
    async with running(profile="azure", api_key=KEY, report_model="sora-2") as a:
        bearer = await a.http.get("/videos")
        assert bearer.status_code == 401
        assert bearer.json()["error"]["code"] == "401"
        assert "subscription key" in bearer.json()["error"]["message"]
        headers = {"Authorization": "", "api-key": KEY}
        assert (await a.http.get("/videos", headers=headers)).status_code == 200
        created = await a.http.post(
            "/videos", json={"prompt": "p", "model": "my-sora-deployment"}, headers=headers
        )
        assert created.json()["model"] == "sora-2"
        unknown = await a.http.get("/nothing", headers=headers)
        assert unknown.json() == {"error": {"code": "404", "message": "Resource not found"}}


async def test_models_lists_the_served_models_behind_auth(api: Api) -> None:
    models = await api.http.get("/models")
    assert [m["id"] for m in models.json()["data"]] == ["sora-2", "sora-2-pro"]
    assert (await api.http.get("/models", headers={"Authorization": ""})).status_code == 401


async def test_the_openai_profile_offers_every_operation(api: Api) -> None:
    created = await api.create()
    await api.finish(created["id"])
    for path, body in [
        (f"/videos/{created['id']}/remix", {"prompt": "p"}),
        ("/videos/edits", {"video": {"id": created["id"]}, "prompt": "p"}),
        ("/videos/extensions", {"video": {"id": created["id"]}, "prompt": "p", "seconds": "4"}),
    ]:
        assert (await api.http.post(path, json=body)).status_code == 200


# ---------------------------------------------------------------------- faults


async def test_an_injected_429_carries_retry_after_and_the_envelope() -> None:
    async with running(retry_after_seconds=1.5) as a:
        a.sim.inject("GET /videos", "429")
        limited = await a.http.get("/videos")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        assert limited.headers["retry-after-ms"] == "1500"
        error = envelope(limited)
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert (await a.http.get("/videos")).status_code == 200


@pytest.mark.parametrize(("fault", "status"), [("500", 500), ("503", 503)])
async def test_injected_server_errors_answer_with_the_envelope(
    api: Api, fault: Any, status: int
) -> None:
    api.sim.inject("POST /videos", fault, times=2)
    for _ in range(2):
        response = await api.http.post("/videos", json={"prompt": "p"})
        assert response.status_code == status
        assert envelope(response)["type"] == "server_error"
    assert api.sim.videos == {}
    await api.create()
    assert len(api.sim.videos) == 1
    assert [r.status for r in api.sim.requests] == [status, status, 200]


async def test_a_dropped_request_gets_no_answer_and_does_nothing(api: Api) -> None:
    api.sim.inject("POST /videos", "drop")
    with pytest.raises(httpx.RemoteProtocolError):
        await api.http.post("/videos", json={"prompt": "p"})
    assert api.sim.videos == {}
    assert api.sim.requests[-1].status is None
    assert api.sim.requests[-1].route == "POST /videos"


@pytest.mark.parametrize(
    ("fault", "error"),
    [("500_after_action", None), ("drop_after_action", httpx.RemoteProtocolError)],
)
async def test_after_action_faults_create_the_job_then_fail(
    api: Api, fault: Any, error: type[Exception] | None
) -> None:
    api.sim.inject("POST /videos", fault)
    if error is None:
        response = await api.http.post("/videos", json={"prompt": "ambiguous"})
        assert response.status_code == 500
    else:
        with pytest.raises(error):
            await api.http.post("/videos", json={"prompt": "ambiguous"})
    (video,) = api.sim.videos.values()
    assert video.prompt == "ambiguous"
    assert api.sim.requests[-1].json == {"prompt": "ambiguous"}


async def test_hangs_outlast_the_client_and_end_when_the_server_stops() -> None:
    async with running() as a:
        a.sim.inject("POST /videos", "hang_after_action")
        a.sim.inject("GET /videos/{video_id}", "hang")
        with pytest.raises(httpx.ReadTimeout):
            await a.http.post("/videos", json={"prompt": "slow"}, timeout=0.3)
        (video_id,) = a.sim.videos
        with pytest.raises(httpx.ReadTimeout):
            await a.http.get(f"/videos/{video_id}", timeout=0.3)
        started = time.monotonic()
        await a.sim.stop()
        assert time.monotonic() - started < 10


async def test_inject_refuses_unknown_routes_and_faults(api: Api) -> None:
    with pytest.raises(ValueError, match="route"):
        api.sim.inject("PUT /videos", "500")
    with pytest.raises(ValueError, match="fault"):
        api.sim.inject("GET /videos", "teapot")  # type: ignore[arg-type]
    api.sim.inject("GET /v1/videos/{id}/content", "503")
    assert (await api.http.get("/videos/video_x/content")).status_code == 503


async def test_rate_shares_apply_to_every_request() -> None:
    async with running(rate_limit_rate=1.0) as a:
        statuses = {(await a.http.get("/videos")).status_code for _ in range(5)}
        assert statuses == {429}
    async with running(server_error_rate=1.0) as b:
        statuses = {
            (await b.http.post("/videos", json={"prompt": "p"})).status_code for _ in range(6)
        }
        assert statuses <= {500, 503} and statuses
        assert b.sim.videos == {}


async def test_seeded_shares_repeat_exactly() -> None:
    async def statuses(seed: int) -> list[int]:
        async with running(rate_limit_rate=0.5, seed=seed) as a:
            return [(await a.http.get("/videos")).status_code for _ in range(16)]

    first = await statuses(7)
    assert first == await statuses(7)
    assert set(first) == {200, 429}


async def test_latency_is_added_to_every_request() -> None:
    async with running(latency_ms=200) as a:
        started = time.monotonic()
        await a.http.get("/videos")
        assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------------- controls and logs


async def test_the_request_log_records_what_was_sent(api: Api) -> None:
    created = await api.create(size="1280x720")
    await api.http.get("/videos", params={"limit": "1"}, headers={"X-Trace": "abc"})
    create_log, list_log = api.sim.requests
    assert (create_log.method, create_log.path, create_log.status) == ("POST", "/v1/videos", 200)
    assert create_log.json == {"prompt": "a fox in the snow", "size": "1280x720"}
    assert create_log.headers["authorization"] == f"Bearer {KEY}"
    assert (list_log.route, list_log.query, list_log.headers["x-trace"]) == (
        "GET /videos",
        {"limit": "1"},
        "abc",
    )
    assert api.sim.videos[created["id"]].size == "1280x720"


async def test_retrieve_sends_the_poll_hint_when_configured() -> None:
    async with running(poll_after_ms=750) as a:
        created = await a.create()
        response = await a.http.get(f"/videos/{created['id']}")
        assert response.headers["openai-poll-after-ms"] == "750"
    async with running() as b:
        created = await b.create()
        assert "openai-poll-after-ms" not in (await b.http.get(f"/videos/{created['id']}")).headers


async def test_advance_moves_a_sim_clock_given_whole_or_as_its_now() -> None:
    clock = SimClock(start=1000.0)
    SimServer(clock=clock).advance(5)
    SimServer(clock=clock.now).advance(5)
    assert clock.now() == 1010.0
    with pytest.raises(TypeError):
        SimServer().advance(1)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


async def test_the_server_reports_its_url_and_can_restart_on_a_new_port() -> None:
    sim = SimServer(SimConfig(job_seconds=0.0))
    async with sim as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
        assert sim.base_url == url
        with pytest.raises(RuntimeError):
            await sim.start()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(url + "/videos", headers=AUTH)


# ---------------------------------------------------------------------- embedded and CLI


async def test_the_embedded_simulator_completes_jobs_in_real_time(tmp_path: Path) -> None:
    sim = EmbeddedSim(
        cache_dir=tmp_path / "cache",
        job_seconds=0.2,
        retention_seconds=60,
        profile="openai",
        poll_after_ms=100,
    )
    async with sim as url, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        created = (await http.post("/videos", json={"prompt": "quick"})).json()
        for _ in range(200):
            response = await http.get(f"/videos/{created['id']}")
            if response.json()["status"] == "completed":
                break
            assert response.headers["openai-poll-after-ms"] == "100"
            await asyncio.sleep(0.05)
        assert response.json()["status"] == "completed"
        content = await http.get(f"/videos/{created['id']}/content")
        assert content.content[4:8] == b"ftyp"
    assert clips(tmp_path / "cache")


def test_environment_fills_options_the_command_line_left_out() -> None:
    parser = argparse.ArgumentParser()
    add_sim_arguments(parser)
    args = parser.parse_args(["--job-seconds", "3", "--profile", "sglang"])
    env = {"SIM_JOB_SECONDS": "9", "SIM_FAIL_RATE": "0.25", "SIM_API_KEY": "sk-env"}
    values = resolve_options(args, env)
    assert (values["job_seconds"], values["profile"]) == (3.0, "sglang")
    assert (values["fail_rate"], values["api_key"], values["port"]) == (0.25, "sk-env", 8765)
    with pytest.raises(SimArgumentError, match="SIM_FAIL_RATE"):
        resolve_options(parser.parse_args([]), {"SIM_FAIL_RATE": "2"})
    with pytest.raises(SystemExit):
        parser.parse_args(["--fail-rate", "1.5"])


def test_served_models_and_auth_come_from_flags_or_environment() -> None:
    from bot.sim.cli import config_from_options

    parser = argparse.ArgumentParser()
    add_sim_arguments(parser)
    args = parser.parse_args(["--profile", "vllm-omni", "--models", "Wan-AI/Wan2.2, other"])
    values = resolve_options(args, {"SIM_CHECK_MODEL": "true", "SIM_AUTH": "no"})
    config = config_from_options(values)
    assert config.served_models == ("Wan-AI/Wan2.2", "other")
    assert (config.check_model, config.auth, config.profile) == (True, False, "vllm-omni")
    with pytest.raises(SimArgumentError, match="SIM_AUTH"):
        resolve_options(parser.parse_args([]), {"SIM_AUTH": "maybe"})
    with pytest.raises(SystemExit):
        parser.parse_args(["--profile", "nonesuch"])


def test_the_clip_mode_comes_from_a_flag_or_the_environment() -> None:
    from bot.sim.cli import config_from_options

    parser = argparse.ArgumentParser()
    add_sim_arguments(parser)
    assert config_from_options(resolve_options(parser.parse_args([]), {})).clip == "render"
    flag = resolve_options(parser.parse_args(["--clip", "Prepared"]), {"SIM_CLIP": "render"})
    assert config_from_options(flag).clip == "prepared"
    env = resolve_options(parser.parse_args([]), {"SIM_CLIP": "prepared"})
    assert config_from_options(env).clip == "prepared"
    with pytest.raises(SimArgumentError, match="SIM_CLIP"):
        resolve_options(parser.parse_args([]), {"SIM_CLIP": "cached"})
    with pytest.raises(SystemExit):
        parser.parse_args(["--clip", "cached"])


async def _start_cli(*args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "videobot",
        "sim",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )


async def test_the_command_serves_on_the_printed_port_and_stops_on_sigint() -> None:
    proc = await _start_cli("--port", "0", "--job-seconds", "1", SIM_API_KEY="sk-cli")
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        match = re.fullmatch(
            r"Simulated Videos API listening on (http://127\.0\.0\.1:(\d+)/v1)", line
        )
        assert match, line
        assert int(match.group(2)) > 0
        async with httpx.AsyncClient(base_url=match.group(1), timeout=10) as http:
            ok = await http.get("/videos", headers={"Authorization": "Bearer sk-cli"})
            assert ok.status_code == 200
            assert ok.json()["data"] == []
            wrong = await http.get("/videos", headers={"Authorization": "Bearer other"})
            assert wrong.status_code == 401
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 20)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_command_refuses_a_bad_environment_value_in_one_line() -> None:
    proc = await _start_cli("--port", "0", SIM_FAIL_RATE="lots")
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("error: SIM_FAIL_RATE")


async def test_every_route_takes_injected_faults(api: Api) -> None:
    paths = {
        "GET /models": "/models",
        "POST /videos": "/videos",
        "GET /videos": "/videos",
        "POST /videos/edits": "/videos/edits",
        "POST /videos/extensions": "/videos/extensions",
        "GET /videos/{id}": "/videos/video_1",
        "DELETE /videos/{id}": "/videos/video_1",
        "GET /videos/{id}/content": "/videos/video_1/content",
        "POST /videos/{id}/remix": "/videos/video_1/remix",
    }
    assert set(paths) == set(ROUTES)
    for route, path in paths.items():
        api.sim.inject(route, "503")
        method = route.split()[0]
        response = await api.http.request(
            method, path, json={"prompt": "p"} if method == "POST" else None
        )
        assert response.status_code == 503, route
        assert api.sim.requests[-1].route == route
    assert api.sim.videos == {}


# ---------------------------------------------------------------------- OpenRouter


async def test_openrouter_jobs_go_pending_in_progress_completed_with_their_cost() -> None:
    async with running(profile="openrouter") as api:
        models = (await api.http.get("/videos/models")).json()["data"]
        assert [m["id"] for m in models] == [
            "google/veo-3.1",
            "alibaba/wan-2.6",
            "openai/sora-2-pro",
        ]
        assert all("pricing_skus" in m and "supported_durations" in m for m in models)
        answer = await api.http.post(
            "/videos",
            json={
                "model": "google/veo-3.1",
                "prompt": "a fox",
                "duration": 8,
                "aspect_ratio": "9:16",
                "resolution": "1080p",
                "seed": 7,
                "generate_audio": False,
            },
        )
        assert answer.status_code == 202, answer.text
        created = answer.json()
        assert created["status"] == "pending"
        assert created["polling_url"] == f"{api.sim.base_url}/videos/{created['id']}"
        assert (await api.get(created["id"]))["status"] == "pending"
        api.clock.advance(5)
        running_job = await api.get(created["id"])
        assert running_job["status"] == "in_progress" and "usage" not in running_job
        done = await api.finish(created["id"])
        assert done["status"] == "completed"
        # 8 s at Veo's 1080p price of $0.40 a second.
        assert done["usage"] == {"cost": pytest.approx(3.2)}
        assert done["unsigned_urls"] == [f"{created['polling_url']}/content?index=0"]
        assert "prompt" not in done
        assert api.sim.videos[created["id"]].size == "1080x1920"
        content = await api.http.get(f"/videos/{created['id']}/content", params={"index": "0"})
        assert content.status_code == 200 and content.content[4:8] == b"ftyp"
        other = await api.http.get(f"/videos/{created['id']}/content", params={"index": "1"})
        assert other.status_code == 404
        assert isinstance(other.json()["error"]["code"], int)


async def test_openrouter_has_no_list_delete_or_remix_and_fails_with_a_message() -> None:
    async with running(profile="openrouter", moderation_word="forbidden") as api:
        answer = await api.http.post(
            "/videos", json={"model": "alibaba/wan-2.6", "prompt": "forbidden", "duration": 5}
        )
        video_id = answer.json()["id"]
        failed = await api.finish(video_id)
        assert failed["status"] == "failed"
        assert isinstance(failed["error"], str) and "usage" not in failed
        assert (await api.http.get("/videos")).status_code == 404
        assert (await api.http.delete(f"/videos/{video_id}")).status_code == 404
        assert (
            await api.http.post(f"/videos/{video_id}/remix", json={"prompt": "x"})
        ).status_code == 404
        assert video_id in api.sim.videos


async def test_only_openrouter_answers_its_video_models() -> None:
    async with running(profile="openai") as api:
        answer = await api.http.get("/videos/models")
    assert answer.status_code == 404
    assert "models" in answer.json()["error"]["message"]


def test_processes_sharing_a_prepared_folder_render_each_clip_once(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    script = (
        "import sys\n"
        "from bot.sim import media\n"
        "from bot.sim.prepared import prepared_clip\n"
        "calls = []\n"
        "real = media.render_video\n"
        "media.render_video = lambda *a: (calls.append(a), real(*a))[1]\n"
        "paths = prepared_clip(64, 48, 1, 4)\n"
        "print(len(calls), paths['video'])\n"
    )
    env = {**os.environ, "SIM_PREPARED_DIR": str(folder)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    # The first process renders the clip into the shared folder; the second finds it there.
    assert [int(calls) for calls, _ in runs] == [1, 0]
    assert runs[0][1] == runs[1][1] and Path(runs[0][1]).parent == folder
    with av.open(runs[0][1]) as container:
        assert container.streams.video[0].width == 64
