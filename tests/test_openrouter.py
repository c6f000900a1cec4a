"""OpenRouter: its create body, its job object, and the whole bot against the simulator's
emulation of it (catalog discovered from `GET /videos/models`, a text-only video, one from a
reference image sent as `frame_images`, and a failed job)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.errors import UnsupportedOperation
from bot.api.models import CreateVideo, Phase, ReferenceImage, Video
from bot.api.openrouter import create_body, shape_from_size
from bot.api.probe import choose, probe
from bot.api.profiles import PROFILES
from bot.backend import Backend
from bot.catalog_files import load_presets
from bot.sim import SimClock, SimConfig, SimServer
from bot.sim.openrouter import MODELS
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Upload
from tests.test_profiles import failed, outcome, png, settled, slash

KEY = "sk-or-test-0123456789"


# ---------------------------------------------------------------------- the create body


def reference() -> ReferenceImage:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 40, 40)).save(out, "PNG")
    return ReferenceImage(data=out.getvalue(), filename="r.png", content_type="image/png")


def test_a_create_says_duration_as_an_integer_and_the_frame_as_ratio_and_resolution() -> None:
    request = CreateVideo(prompt="a fox", model="google/veo-3.1", seconds="6", size="720x1280")
    assert create_body(request) == {
        "prompt": "a fox",
        "model": "google/veo-3.1",
        "duration": 6,
        "aspect_ratio": "9:16",
        "resolution": "720p",
    }


async def test_the_catalog_says_which_ratio_a_size_stands_for_or_that_a_size_is_sent() -> None:
    wan = load_presets(["wan-2.6"])
    sora = load_presets(["sora-2-pro"])
    async with httpx.AsyncClient() as http:
        client = VideosClient(http, ClientConfig("http://127.0.0.1:9/v1", SecretStr("")))
        Backend(client, client.config.base_url, simulated=False).use_catalog(
            load_presets(["wan-2.6", "sora-2-pro"])
        )
    shapes = client.shapes
    assert shapes is not None
    # Wan 2.6 makes 960x960 for 1:1 at 720p (not 720x720): the catalog knows.
    square = CreateVideo(prompt="p", model=wan.default.id, seconds="5", size="960x960")
    body = create_body(square, shapes=shapes)
    assert (body["aspect_ratio"], body["resolution"]) == ("1:1", "720p")
    assert "size" not in body
    # Sora 2 Pro is asked for by size.
    tall = CreateVideo(prompt="p", model=sora.default.id, seconds="8", size="1024x1792")
    body = create_body(tall, shapes=shapes)
    assert body["size"] == "1024x1792" and "aspect_ratio" not in body
    # A size that is no small ratio, without a catalog, goes as a size.
    assert shape_from_size("1000x997") is None
    odd = CreateVideo(prompt="p", model="m", seconds="4", size="1000x997")
    assert create_body(odd)["size"] == "1000x997"


def test_a_reference_is_a_first_frame_data_url_and_options_go_when_given() -> None:
    image = reference()
    request = CreateVideo(prompt="it moves", model="google/veo-3.1", seconds="4", size="1280x720")
    body = create_body(
        request.model_copy(update={"seed": 42, "audio": False, "negative_prompt": "blur"}), image
    )
    (frame,) = body["frame_images"]
    assert frame["type"] == "image_url" and frame["frame_type"] == "first_frame"
    header, payload = frame["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    assert base64.b64decode(payload) == image.data
    assert body["seed"] == 42 and body["generate_audio"] is False
    assert body["negative_prompt"] == "blur"
    assert "input_reference" not in body and "seconds" not in body
    plain = create_body(request)
    assert not {"seed", "generate_audio", "frame_images", "negative_prompt"} & plain.keys()


# ---------------------------------------------------------------------- the job object


@pytest.mark.parametrize(
    ("usage", "cost"),
    [
        ({"cost": 2.4}, 2.4),
        ({"cost": "0.75"}, 0.75),
        ({"cost": 0}, 0.0),
        ({"cost": -1}, None),
        ({"cost": "NaN"}, None),
        ({"cost": 1e400}, None),
        ({"cost": True}, None),
        ({"cost": {"usd": 1}}, None),
        ({"cost": 10**9}, None),
        ("not an object", None),
        (None, None),
    ],
)
def test_usage_cost_is_a_finite_non_negative_number_or_nothing(
    usage: Any, cost: float | None
) -> None:
    video = Video.model_validate({"id": "gen-1", "status": "completed", "usage": usage})
    assert video.cost_usd == cost
    assert video.cost_usd is None or math.isfinite(video.cost_usd)


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("pending", Phase.RUNNING),
        ("in_progress", Phase.RUNNING),
        ("completed", Phase.COMPLETED),
        ("failed", Phase.FAILED),
        ("cancelled", Phase.FAILED),
        ("expired", Phase.FAILED),
    ],
)
def test_openrouter_statuses(status: str, phase: Phase) -> None:
    assert Video.model_validate({"id": "gen-1", "status": status}).phase is phase


def test_a_failed_jobs_error_may_be_a_bare_string() -> None:
    video = Video.model_validate({"id": "gen-1", "status": "failed", "error": "blocked"})
    assert video.error is not None and video.error.message == "blocked"


# ---------------------------------------------------------------------- the client and the sim


class Rig:
    def __init__(self, **config: Any) -> None:
        # A prepared clip: these tests read what the client sends and saves, never the frames.
        config.setdefault("clip", "prepared")
        self.clock = SimClock()
        self.sim = SimServer(
            SimConfig(profile="openrouter", job_seconds=2.0, api_key=KEY, **config),
            clock=self.clock.now,
        )
        self.http = httpx.AsyncClient(timeout=5.0)
        self.client: VideosClient

    async def __aenter__(self) -> Rig:
        url = await self.sim.start()
        self.client = VideosClient(
            self.http,
            ClientConfig(url, SecretStr(KEY), capabilities=PROFILES["openrouter"], max_retries=0),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()
        await self.sim.stop()

    async def finish(self, video: Video) -> Video:
        self.clock.advance(30)
        await self.sim.settle()
        return await self.client.retrieve(video.id)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


async def test_a_job_runs_pending_to_completed_with_its_cost_and_index_0_content(
    rig: Rig, tmp_path: Path
) -> None:
    request = CreateVideo(prompt="a fox", model="alibaba/wan-2.6", seconds="5", size="1920x1080")
    created = await rig.client.create(request)
    assert created.status == "pending" and created.phase is Phase.RUNNING
    (post,) = [r for r in rig.sim.requests if r.method == "POST"]
    assert post.status == 202
    assert post.headers["authorization"] == f"Bearer {KEY}"
    assert post.json == {
        "prompt": "a fox",
        "model": "alibaba/wan-2.6",
        "duration": 5,
        "aspect_ratio": "16:9",
        "resolution": "1080p",
    }
    done = await rig.finish(created)
    assert done.phase is Phase.COMPLETED
    # Wan 2.6 at 1080p: $0.15 a second for 5 seconds.
    assert done.cost_usd == pytest.approx(0.75)
    size = await rig.client.download(done.id, tmp_path / "v.mp4")
    assert size > 0
    (content,) = [r for r in rig.sim.requests if r.path.endswith("/content")]
    assert content.query == {"index": "0"}


async def test_no_list_delete_or_remix_is_asked_for(rig: Rig) -> None:
    request = CreateVideo(prompt="a fox", model="google/veo-3.1", seconds="4", size="1280x720")
    done = await rig.finish(await rig.client.create(request))
    for call in (
        rig.client.delete(done.id),
        rig.client.remix(done.id, "again"),
        rig.client.list(),
    ):
        with pytest.raises(UnsupportedOperation):
            await call
    assert all(r.method != "DELETE" and not r.path.endswith("/remix") for r in rig.sim.requests)


async def test_the_simulator_refuses_what_openrouter_refuses(rig: Rig) -> None:
    base = rig.sim.base_url
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        for body in (
            {"model": "google/veo-3.1", "prompt": "p", "duration": "4"},
            {"model": "google/veo-3.1", "prompt": "p", "duration": 12},
            {"model": "google/veo-3.1", "prompt": "p", "seconds": "4"},
            {"model": "openai/sora-2-pro", "prompt": "p", "seed": 7},
            {"model": "openai/sora-2-pro", "prompt": "p", "frame_images": []},
        ):
            answer = await http.post("/videos", json=body)
            assert answer.status_code == 400, body
            assert isinstance(answer.json()["error"]["code"], int)
        assert (await http.get("/videos")).status_code == 404
        assert (await http.get("/videos/models")).status_code == 200
    async with httpx.AsyncClient(base_url=base) as anonymous:
        assert (await anonymous.get("/videos/models")).status_code == 401
    assert rig.sim.videos == {}


async def test_auto_tells_openrouter_by_its_video_models_list(rig: Rig) -> None:
    findings = await probe(rig.client)
    choice = choose(findings)
    assert (choice.profile, choice.confident) == ("openrouter", True)
    assert "/videos/models" in choice.reason
    assert len(rig.sim.requests) <= 4
    assert all(r.method == "GET" for r in rig.sim.requests)


def test_auto_tells_openrouter_by_its_host() -> None:
    from bot.api.probe import Answer, Findings

    findings = Findings("https://openrouter.ai/api/v1", "authorization")
    findings.models = Answer("/models", 200, body={"data": []})
    findings.listing = Answer("/videos", 404)
    assert choose(findings).profile == "openrouter"
    assert not findings.wrong_path


# ---------------------------------------------------------------------- the whole bot


@pytest.fixture
async def w(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async with world(
        fake_discord,
        tmp_path,
        users=3,
        profile="openrouter",
        api_key=None,
        moderation_word="forbidden",
        job_seconds=1.0,
        fps=6,
    ) as env:
        yield env


def video_options(w: World) -> dict[str, dict[str, Any]]:
    command = w.fake.command("video", guild=w.guild)
    assert command is not None
    return {o["name"]: o for o in command.options}


def command_syncs(w: World) -> int:
    return len([r for r in w.fake.requests if r.method == "PUT" and r.route.endswith("/commands")])


async def test_openrouter_end_to_end_with_its_discovered_catalog(w: World) -> None:
    async with w.bot(video_api_profile="auto") as bot:
        assert bot.backend.profile == "openrouter"
        # The catalog is what GET /videos/models said, and /video offers it.
        assert [m.id for m in bot.catalog.models] == [m["id"] for m in MODELS]
        options = video_options(w)
        assert [c["value"] for c in options["model"]["choices"]] == [m["id"] for m in MODELS]
        assert [c["value"] for c in options["seconds"]["choices"]] == [
            "4",
            "5",
            "6",
            "8",
            "10",
            "12",
            "15",
        ]
        plain = await slash(w, "a lighthouse at dusk", 0, model="google/veo-3.1", seconds="4")
        photo = await slash(
            w,
            "the photo comes alive",
            1,
            model="alibaba/wan-2.6",
            seconds="5",
            reference=Upload("p.png", png(), "image/png"),
        )
        failing = await slash(w, "something forbidden here", 2, model="google/veo-3.1", seconds="4")
        plain_msg = await w.wait_for(lambda: outcome(plain))
        photo_msg = await w.wait_for(lambda: outcome(photo))
        failed_msg = await w.wait_for(lambda: outcome(failing))
        ledger = await settled(bot, 3)
    assert video_attachment(plain_msg) is not None
    assert video_attachment(photo_msg) is not None
    assert video_attachment(failed_msg) is None and failed(failed_msg)

    sent = [r for r in w.sim.requests if r.method == "POST"]
    assert len(sent) == 3
    assert all(r.json is not None and not r.files for r in sent)
    by_prompt = {r.json["prompt"]: r.json for r in sent}
    assert by_prompt["a lighthouse at dusk"] == {
        "prompt": "a lighthouse at dusk",
        "model": "google/veo-3.1",
        "duration": 4,
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    (frame,) = by_prompt["the photo comes alive"]["frame_images"]
    assert frame["frame_type"] == "first_frame"
    assert frame["image_url"]["url"].startswith("data:image/")
    (made,) = [v for v in w.sim.videos.values() if v.prompt == "the photo comes alive"]
    assert made.frame_types == ("first_frame",)
    downloads = [r for r in w.sim.requests if r.path.endswith("/content")]
    assert downloads and all(r.query == {"index": "0"} for r in downloads)
    assert not [r for r in w.sim.requests if r.method == "DELETE"]
    # No listing but the probe's one read (which tells OpenRouter by its refusal).
    listings = [r for r in w.sim.requests if r.method == "GET" and r.path == "/v1/videos"]
    assert [(r.query, r.status) for r in listings] == [({"limit": "1"}, 404)]
    spent = sorted(b.spent for b in ledger.values())
    # Veo 4 s at $0.40 and Wan 5 s at $0.10 charged as the catalog estimates; the failure refunded.
    assert spent == [0, 500_000, 1_600_000]


async def test_the_commands_are_synced_again_only_when_the_servers_list_changed(w: World) -> None:
    async with w.bot():
        pass
    async with w.bot():
        pass
    assert command_syncs(w) == 1
    w.sim.config.openrouter_models = MODELS[:2]
    async with w.bot() as bot:
        assert [m.id for m in bot.catalog.models] == [m["id"] for m in MODELS[:2]]
    assert command_syncs(w) == 2
