"""`/video` follows the catalog in use, end to end: the real bot on discord.py against the fake
Discord, with `VIDEO_CATALOG=veo-3.1` and a simulator that accepts what that catalog offers."""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from bot.catalog_files import load_presets
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction, Upload
from tests.fakediscord.state import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    CHAT_INPUT,
    OPT_STRING,
    Message,
)
from tests.test_e2e_actions import modal_inputs, png, submit

VEO = load_presets(["veo-3.1"])


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    # The simulator takes what the catalog offers, as the bot's embedded one does.
    async with world(
        fake_discord,
        tmp_path,
        database_url=database_url,
        seconds=tuple(VEO.all_seconds()),
        sizes=tuple(VEO.all_sizes()),
    ) as env:
        yield env


def synced_video_options(w: World) -> dict[str, dict[str, Any]]:
    command = w.fake.command("video", guild=w.guild)
    assert command is not None
    return {o["name"]: o for o in command.options}


def command_syncs(w: World) -> int:
    return len([r for r in w.fake.requests if r.method == "PUT" and r.route.endswith("/commands")])


def creates(w: World) -> int:
    return len([r for r in w.sim.requests if r.method == "POST"])


def decode(data: bytes) -> tuple[int, int, float]:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(data)
        handle.flush()
        with av.open(handle.name) as container:
            stream = container.streams.video[0]
            assert container.duration is not None
            return (
                stream.codec_context.width,
                stream.codec_context.height,
                container.duration / av.time_base,
            )


async def test_a_veo_catalog_offers_its_durations_and_a_6_second_job_is_delivered(
    w: World,
) -> None:
    async with w.bot(video_catalog=["veo-3.1"]) as bot:
        options = synced_video_options(w)
        assert [c["value"] for c in options["seconds"]["choices"]] == ["4", "6", "8"]
        assert [c["value"] for c in options["model"]["choices"]] == ["google/veo-3.1"]
        assert [c["value"] for c in options["aspect_ratio"]["choices"]] == ["16:9", "9:16"]
        assert [c["value"] for c in options["resolution"]["choices"]] == ["720p", "1080p"]
        interaction = await w.fake.dispatch_slash(
            "video",
            {"prompt": "a lighthouse in a storm", "seconds": "6", "aspect_ratio": "9:16"},
            user=w.user,
            channel=w.channel,
        )

        def delivered() -> Message | None:
            original = interaction.original
            return original if original is not None and video_attachment(original) else None

        message: Message = await w.wait_for(delivered)
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
    assert (job.model, job.seconds, job.size) == ("google/veo-3.1", "6", "720x1280")
    (video,) = w.sim.videos.values()
    assert (video.model, video.seconds, video.size) == ("google/veo-3.1", "6", "720x1280")
    data = video_attachment(message)
    assert data is not None
    width, height, seconds = decode(data)
    assert (width, height) == (720, 1280)
    assert abs(seconds - 6) < 0.2


async def stale_request(w: World, seconds: str) -> Interaction:
    """`/video` as a member's client still showing the commands of the catalog before sends it
    (Discord's clients keep a command's old choices until they refresh)."""
    command = w.fake.command("video", guild=w.guild)
    assert command is not None
    data = {
        "id": str(command.id),
        "name": "video",
        "type": CHAT_INPUT,
        "guild_id": str(w.guild.id),
        "options": [
            {"name": "prompt", "type": OPT_STRING, "value": "a red fox"},
            {"name": "seconds", "type": OPT_STRING, "value": seconds},
        ],
    }
    # The fake's own dispatch checks values against the synced choices, as up-to-date clients do.
    return await w.fake._dispatch_interaction(
        type=APPLICATION_COMMAND,
        data=data,
        user=w.user,
        channel=w.channel,
        member=w.guild.member(w.user),
        command_name="video",
    )


async def test_a_catalog_change_resyncs_and_12_seconds_is_refused_privately_with_no_call(
    w: World,
) -> None:
    async with w.bot():
        # The bundled default: Sora's 4, 8 and 12 seconds.
        assert [c["value"] for c in synced_video_options(w)["seconds"]["choices"]] == [
            "4",
            "8",
            "12",
        ]
    assert command_syncs(w) == 1
    async with w.bot(video_catalog=["veo-3.1"]) as bot:
        assert command_syncs(w) == 2
        assert [c["value"] for c in synced_video_options(w)["seconds"]["choices"]] == [
            "4",
            "6",
            "8",
        ]
        calls = len(w.sim.requests)
        interaction = await stale_request(w, "12")
        await w.wait_for(lambda: interaction.original is not None)
        original = interaction.original
        assert original is not None and original.ephemeral
        text = str(original.embed)
        assert "Veo 3.1 does not make 12-second videos" in text
        assert "Durations: 4, 6, 8 seconds" in text
        assert len(w.sim.requests) == calls and creates(w) == 0
        assert await bot.store.recent_jobs(w.user.id, 5) == []
    assert [m for m in w.messages() if not m.ephemeral and not m.deleted] == []
    # The same catalog again: nothing to sync.
    async with w.bot(video_catalog=["veo-3.1"]):
        pass
    assert command_syncs(w) == 2


async def test_the_built_in_simulator_accepts_what_the_catalog_offers(w: World) -> None:
    async with w.bot(
        video_catalog=["veo-3.1"], video_api_profile="simulator", sim_job_seconds=0.5
    ) as bot:
        assert bot.backend.simulated
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "waves", "seconds": "6"}, user=w.user, channel=w.channel
        )
        await w.wait_for(
            lambda: interaction.original is not None and video_attachment(interaction.original)
        )
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
    assert (job.state, job.seconds, job.size) == ("succeeded", "6", "1280x720")
    assert w.sim.requests == []  # the embedded simulator, not the test's


async def autocomplete(w: World, options: list[dict[str, Any]]) -> Interaction:
    """A member typing in `/video`'s focused option, the others already filled in."""
    command = w.fake.command("video", guild=w.guild)
    assert command is not None
    return await w.fake._dispatch_interaction(
        type=AUTOCOMPLETE,
        data={
            "id": str(command.id),
            "name": "video",
            "type": CHAT_INPUT,
            "guild_id": str(w.guild.id),
            "options": [{"type": OPT_STRING, **o} for o in options],
        },
        user=w.user,
        channel=w.channel,
        member=w.guild.member(w.user),
    )


async def test_past_25_sizes_video_autocompletes_them_and_animate_offers_shapes(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> None:
    presets = ["seedance", "veo-3.1", "wan-2.6"]
    catalog = load_presets(presets)
    assert len(catalog.all_sizes()) > 25
    async with (
        world(
            fake_discord,
            tmp_path,
            database_url=database_url,
            seconds=tuple(catalog.all_seconds()),
            sizes=tuple(catalog.all_sizes()),
        ) as w,
        w.bot(video_catalog=presets) as bot,
    ):
        size = synced_video_options(w)["size"]
        assert size.get("autocomplete") is True and "choices" not in size
        typing = await autocomplete(
            w,
            [
                {"name": "prompt", "value": "a cat"},
                {"name": "model", "value": "google/veo-3.1"},
                {"name": "size", "value": "1080", "focused": True},
            ],
        )
        await w.wait_for(lambda: typing.response_data is not None, timeout=3)
        assert typing.response_data is not None
        assert [c["value"] for c in typing.response_data["choices"]] == ["1920x1080", "1080x1920"]
        target = await w.fake.post_message(
            w.channel, w.user, attachments=[Upload("cat.png", png(), "image/png")]
        )
        menu = await w.fake.dispatch_message_command("Animate image", target, user=w.user)
        await w.wait_for(lambda: menu.state == "modal", timeout=3)
        shapes = [o["value"] for o in modal_inputs(menu)["Size"]["options"]]
        assert "9:16@720p" in shapes and "21:9@1080p" in shapes and len(shapes) <= 25
        sent = await submit(
            w,
            menu,
            {
                "Prompt": "the cat yawns",
                "Model": ["google/veo-3.1"],
                "Length": ["6"],
                "Size": ["9:16@720p"],
            },
        )
        await w.wait_for(
            lambda: sent.original is not None and video_attachment(sent.original) is not None
        )
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
    assert (job.model, job.seconds, job.size) == ("google/veo-3.1", "6", "720x1280")
    (video,) = w.sim.videos.values()
    assert video.reference is not None
    with Image.open(io.BytesIO(video.reference)) as fitted:
        assert fitted.size == (720, 1280)
