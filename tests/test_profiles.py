"""Each backend profile end to end: the real bot (which picks the profile itself with
`VIDEO_API_PROFILE=auto`) against the simulator imitating that server, through the fake Discord.

Per profile: a text-only video, one from a reference image and a failed job at once, then Delete
where the server has it; a create whose answer is lost after the server acted; and two members
sending the same prompt when the second answer is lost. Also the thumbnail made locally where a
server has no thumbnail variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from bot.api.profiles import PROFILE_NAMES, PROFILES, ProfileName
from bot.backend import open_backend
from bot.catalog_files import load_presets
from bot.settings import Settings
from bot.sim import SimConfig, SimServer
from bot.sim import media as sim_media
from bot.store import JobBalance, Store
from bot.thumbnail import make_thumbnail, make_thumbnail_async
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction, Upload
from tests.fakediscord.state import Message

JOB_ID = re.compile(r"^job:(\d+):(remix|extend|delete)$")
# How each server is imitated beyond its profile: vLLM-Omni serves one model of its own and
# reports it; an Azure job names the deployment's base model; FastVideo has no auth.
# The bot discovers that model (bot/discovery.py) and offers the wan-2.2 preset's durations and
# sizes, which the simulated server then takes.
WAN = load_presets(["wan-2.2"])
SIM: dict[str, dict[str, Any]] = {
    "azure": {"report_model": "sora-2-2025-10-06"},
    "vllm-omni": {
        "served_models": ("Wan-AI/Wan2.2-T2V-A14B-Diffusers",),
        "seconds": tuple(WAN.all_seconds()),
        "sizes": tuple(WAN.all_sizes()),
    },
}
# The bot finds the profile itself (`auto`); FastVideo has no auth, so the bot has no key.
AUTO = {"video_api_profile": "auto"}
BOT: dict[str, dict[str, Any]] = {
    profile: {**AUTO, "openai_api_key": None} if profile == "fastvideo" else AUTO
    for profile in PROFILE_NAMES
}
NO_VARIANTS = [p for p in PROFILE_NAMES if not PROFILES[p].variants]


def png(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(out, "PNG")
    return out.getvalue()


def decodes(data: bytes) -> bool:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(data)
        handle.flush()
        with av.open(handle.name) as container:
            return bool(container.streams.video) and container.duration is not None


def attachment(message: Message, prefix: str) -> bytes | None:
    for item in message.attachments:
        if item.filename.startswith(prefix):
            return item.data
    return None


def buttons(message: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for button in message.buttons:
        match = JOB_ID.match(str(button.get("custom_id")))
        if match:
            out[match[2]] = match[0]
    return out


def outcome(interaction: Interaction) -> Message | None:
    """The reply once it carries the video, or says the job failed."""
    original = interaction.original
    if original is None:
        return None
    if video_attachment(original) or failed(original):
        return original
    return None


def failed(message: Message) -> bool:
    return "video failed" in str((message.embed or {}).get("title", "")).lower()


def text_of(message: Message) -> str:
    return f"{message.content} {message.embeds}".lower()


async def slash(w: World, prompt: str, user: int = 0, **options: Any) -> Interaction:
    return await w.fake.dispatch_slash(
        "video", {"prompt": prompt, **options}, user=w.users[user], channel=w.channel
    )


async def balances(w: World) -> dict[int, JobBalance]:
    async with await Store.open(w.data_dir / "bot.sqlite3") as store:
        return await store.ledger_sum_by_job()


async def settled(bot: Any, jobs: int) -> dict[int, JobBalance]:
    """The ledger once every one of `jobs` jobs holds nothing any more (a delivery is charged
    just after its message is sent)."""
    for _ in range(400):
        ledger: dict[int, JobBalance] = await bot.store.ledger_sum_by_job()
        if len(ledger) == jobs and all(b.held == 0 for b in ledger.values()):
            return ledger
        await asyncio.sleep(0.05)
    raise AssertionError(f"the ledger never settled: {ledger}")


def creates(w: World) -> list[Any]:
    return [r for r in w.sim.requests if r.route == "POST /videos"]


# ---------------------------------------------------------------------- thumbnails


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    sim_media.render_video(path, 320, 180, 1, 4, "a lighthouse at dusk")
    return path


def test_the_thumbnail_is_the_first_frame_and_private(clip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "thumbs" / "t.webp"
    assert make_thumbnail(clip, dest)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert not dest.with_name("t.webp.part").exists()
    expected = tmp_path / "first.webp"
    sim_media.render_thumbnail(expected, 320, 180, 1, 4, "a lighthouse at dusk")
    with Image.open(dest) as made, Image.open(expected) as first:
        assert made.format == "WEBP"
        assert made.size == (320, 180)
        difference = ImageChops.difference(made.convert("RGB"), first.convert("RGB"))
        # The same picture, give or take the two lossy encodings.
        assert max(ImageStat.Stat(difference).mean) < 8


async def test_a_jpeg_thumbnail_from_a_thread(clip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "t.jpg"
    assert await make_thumbnail_async(clip, dest)
    with Image.open(dest) as made:
        assert made.format == "JPEG"


@pytest.mark.parametrize(
    "content", [b"", b"not a video at all", b"\x00\x00\x00\x18ftypmp42" + bytes(64)]
)
def test_no_thumbnail_from_what_is_not_a_video(clip: Path, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    dest = tmp_path / "t.webp"
    assert make_thumbnail(bad, dest) is False
    assert not dest.exists()
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clip.read_bytes()[:200])
    assert make_thumbnail(truncated, dest) is False


# ---------------------------------------------------------------------- every profile


@pytest.mark.parametrize("profile", PROFILE_NAMES)
async def test_videos_failures_and_delete_in_every_profile(
    fake_discord: FakeDiscord, tmp_path: Path, profile: ProfileName
) -> None:
    caps = PROFILES[profile]
    async with (
        world(
            fake_discord,
            tmp_path,
            users=3,
            profile=profile,
            moderation_word="forbidden",
            **SIM.get(profile, {}),
        ) as w,
        w.bot(**BOT.get(profile, {})) as bot,
    ):
        # `auto` found the server's kind by itself.
        assert bot.backend.profile == profile
        plain = await slash(w, "a lighthouse at dusk", 0)
        photo = await slash(
            w, "the photo comes alive", 1, reference=Upload("p.png", png(), "image/png")
        )
        failing = await slash(w, "something forbidden here", 2)
        plain_msg = await w.wait_for(lambda: outcome(plain))
        photo_msg = await w.wait_for(lambda: outcome(photo))
        failed_msg = await w.wait_for(lambda: outcome(failing))

        for message in (plain_msg, photo_msg):
            data = video_attachment(message)
            assert data is not None and decodes(data)
            thumb = attachment(message, "thumbnail-")
            assert thumb is not None
            with Image.open(io.BytesIO(thumb)) as picture:
                assert picture.format == "WEBP"
        assert video_attachment(failed_msg) is None
        assert failed(failed_msg)

        sent = creates(w)
        assert len(sent) == 3
        with_file = [r for r in sent if "input_reference" in r.files]
        if caps.dialect == "openrouter":
            # OpenRouter takes the reference as a first frame, a data URL in the JSON body.
            with_file = [r for r in sent if r.json and "frame_images" in r.json]
        assert len(with_file) == 1
        if caps.create_encoding == "multipart":
            assert all(r.json is None and "prompt" in r.form_fields for r in sent)
        downloads = [r for r in w.sim.requests if r.route == "GET /videos/{id}/content"]
        if caps.variants:
            assert any(r.query.get("variant") == "thumbnail" for r in downloads)
        else:
            assert all("variant" not in r.query for r in downloads)
        keys = {r.headers.get("authorization", "") + r.headers.get("api-key", "") for r in sent}
        if profile == "fastvideo":
            assert keys == {""}  # a server without auth gets no auth header at all
        elif profile == "azure":
            assert all("api-key" in r.headers and "authorization" not in r.headers for r in sent)

        # Delete where the server has it; no button (and no DELETE) where it has not.
        shown = buttons(plain_msg)
        assert ("delete" in shown) is caps.delete
        if caps.delete:
            click = await w.fake.dispatch_button(plain_msg, shown["delete"], user=w.users[0])
            await w.wait_for(lambda: not plain_msg.attachments)
            assert click is not None
            assert len([r for r in w.sim.requests if r.route == "DELETE /videos/{id}"]) == 1
        else:
            assert not [r for r in w.sim.requests if r.method == "DELETE"]
        ledger = await settled(bot, 3)
    spent = sorted(b.spent for b in ledger.values())
    assert spent.count(0) == 1  # only the failed job was refunded


@pytest.mark.parametrize("profile", PROFILE_NAMES)
async def test_a_lost_create_answer_in_every_profile(
    fake_discord: FakeDiscord, tmp_path: Path, profile: ProfileName
) -> None:
    """The server made the job, then answered 500. Where it can list, the job is found (prompt
    echoed or not, model reported or not) and delivered; where it cannot, the member is told it
    was not confirmed and nothing was charged. The create is never sent twice."""
    caps = PROFILES[profile]
    async with (
        world(fake_discord, tmp_path, users=1, profile=profile, **SIM.get(profile, {})) as w,
        w.bot(create_grace_seconds=10, **BOT.get(profile, {})) as bot,
    ):
        w.sim.inject("POST /videos", "500_after_action")
        interaction = await slash(w, "a paper boat on a pond")
        message = await w.wait_for(lambda: outcome(interaction), timeout=40)
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
        # The charge is written just after the message is sent: wait for it, not for the stop.
        ledger = await settled(bot, 1)
    (made,) = w.sim.videos
    assert len(creates(w)) == 1
    if caps.list:
        assert video_attachment(message) is not None
        assert job.api_video_id == made
        assert ledger[job.id].spent > 0
    else:
        assert video_attachment(message) is None
        assert "confirm" in text_of(message) and "charged" in text_of(message)
        assert job.api_video_id is None
        assert ledger[job.id].spent == 0 and ledger[job.id].held == 0


@pytest.mark.parametrize("profile", ["openai", "sglang"])
async def test_the_same_prompt_twice_never_hands_one_member_the_others_video(
    fake_discord: FakeDiscord, tmp_path: Path, profile: ProfileName
) -> None:
    """Two members send the same prompt moments apart and the second create's answer is lost
    after the server made the job. With prompts echoed (openai) or not (sglang), each gets their
    own video or, the second, a clear "not confirmed, nothing charged": never the first's."""
    prompt = "a red fox in the snow"
    async with (
        world(fake_discord, tmp_path, users=2, profile=profile) as w,
        w.bot(create_grace_seconds=10, **AUTO) as bot,
    ):
        first = await slash(w, prompt, 0)
        await w.wait_for(lambda: len(w.sim.videos) == 1)
        w.sim.inject("POST /videos", "500_after_action")
        second = await slash(w, prompt, 1)
        first_msg = await w.wait_for(lambda: outcome(first), timeout=40)
        second_msg = await w.wait_for(lambda: outcome(second), timeout=40)
        (job_a,) = await bot.store.recent_jobs(w.users[0].id, 5)
        (job_b,) = await bot.store.recent_jobs(w.users[1].id, 5)
    vid_a, vid_b = list(w.sim.videos)
    assert len(creates(w)) == 2
    assert job_a.api_video_id == vid_a
    assert video_attachment(first_msg) is not None
    assert job_b.api_video_id != vid_a
    if video_attachment(second_msg) is not None:
        assert job_b.api_video_id == vid_b
    else:
        assert job_b.api_video_id is None
        assert "confirm" in text_of(second_msg) and "charged" in text_of(second_msg)
        ledger = await balances(w)
        assert ledger[job_b.id].spent == 0 and ledger[job_b.id].held == 0


@pytest.mark.parametrize("profile", ["openai", "sglang"])
async def test_a_lost_create_with_a_reference_is_adopted_only_on_a_prompt_match(
    fake_discord: FakeDiscord, tmp_path: Path, profile: ProfileName
) -> None:
    """With a reference image, the job found after a lost answer must show the same prompt:
    where the server does not echo prompts (sglang) it is never adopted."""
    async with (
        world(fake_discord, tmp_path, users=1, profile=profile) as w,
        w.bot(create_grace_seconds=10, **AUTO) as bot,
    ):
        w.sim.inject("POST /videos", "500_after_action")
        interaction = await slash(
            w, "the photo comes alive", reference=Upload("p.png", png(), "image/png")
        )
        message = await w.wait_for(lambda: outcome(interaction), timeout=40)
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
        ledger = await settled(bot, 1)
    (made,) = w.sim.videos
    assert len(creates(w)) == 1
    if PROFILES[profile].echoes_prompt:
        assert video_attachment(message) is not None
        assert job.api_video_id == made
    else:
        assert video_attachment(message) is None
        assert job.api_video_id is None
        assert "confirm" in text_of(message) and "charged" in text_of(message)
        assert ledger[job.id].spent == 0


# ---------------------------------------------------------------------- choosing the backend


def backend_settings(tmp_path: Path, **values: Any) -> Settings:
    values.setdefault("data_dir", tmp_path / "data")
    return Settings(_env_file=None, **values)


def backend_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("video backend:")]


@pytest.mark.parametrize("values", [{}, {"video_api_profile": "simulator"}])
async def test_the_simulator_runs_when_nothing_is_set_or_when_asked_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, values: dict[str, Any]
) -> None:
    caplog.set_level(logging.INFO)
    async with SimServer(SimConfig()) as url, contextlib.AsyncExitStack() as stack:
        if values:
            values = {**values, "openai_base_url": url, "openai_api_key": "sk-test-123"}
        backend = await open_backend(backend_settings(tmp_path, **values), stack)
        assert backend.simulated
        assert backend.base_url != url
    assert backend_lines(caplog) == ["video backend: simulator"]


# Azure always wants a key (and only its key tells it apart from OpenAI's shape).
@pytest.mark.parametrize("profile", [p for p in PROFILE_NAMES if p != "azure"])
async def test_a_keyless_server_is_probed_with_reads_only_and_sent_no_auth_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, profile: ProfileName
) -> None:
    caplog.set_level(logging.INFO)
    sim = SimServer(SimConfig(profile=profile, auth=False))
    async with sim as url, contextlib.AsyncExitStack() as stack:
        backend = await open_backend(backend_settings(tmp_path, openai_base_url=url), stack)
    assert not backend.simulated
    assert backend.profile == profile
    assert backend.client.caps == PROFILES[profile]
    (line,) = backend_lines(caplog)
    assert line.startswith(f"video backend: {url} (profile {profile}, chosen because ")
    # A few cheap reads, never a create, and no auth header without a key.
    assert 1 <= len(sim.requests) <= 4
    assert all(r.method == "GET" for r in sim.requests)
    assert all(
        "authorization" not in r.headers and "api-key" not in r.headers for r in sim.requests
    )


async def test_a_named_profile_is_not_probed(tmp_path: Path) -> None:
    sim = SimServer(SimConfig(profile="sglang"))
    async with sim as url, contextlib.AsyncExitStack() as stack:
        settings = backend_settings(tmp_path, openai_base_url=url, video_api_profile="sglang")
        backend = await open_backend(settings, stack)
    assert (backend.profile, backend.reason) == ("sglang", "VIDEO_API_PROFILE says so")
    assert sim.requests == []


async def test_a_server_down_at_start_does_not_stop_the_bot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    async with contextlib.AsyncExitStack() as stack:
        backend = await open_backend(backend_settings(tmp_path, openai_base_url=url), stack)
    assert (backend.profile, backend.simulated) == ("openai", False)
    (line,) = backend_lines(caplog)
    assert "could not be probed" in line and "doctor" in line
