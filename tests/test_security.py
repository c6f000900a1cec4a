"""What a hostile member or a careless log could do: forged clicks, secrets in text, loose files."""

from __future__ import annotations

import io
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from bot.api.config import ClientConfig
from bot.settings import Settings
from tests.conftest import KNOWN_SECRETS, leaks
from tests.e2e import API_KEY, World, video_attachment, world
from tests.fakediscord import FakeDiscord, Upload
from tests.fakediscord.state import Message

MESSAGE_COMPONENT = 3


@pytest.fixture
async def w(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, users=2) as env:
        yield env


def test_the_leak_guard_finds_a_secret_anywhere_in_a_line() -> None:
    lines = ["GET /v1/videos 200", f"retrying with Authorization: Bearer {API_KEY} (attempt 2)"]
    assert leaks(lines, {API_KEY}) == [lines[1]]
    assert leaks(lines, {"sk-nothing-like-it"}) == []
    assert API_KEY in KNOWN_SECRETS


def test_settings_and_client_config_never_show_the_key() -> None:
    settings = Settings(_env_file=None, openai_api_key=API_KEY, discord_token="discord-tok-123")
    config = ClientConfig(base_url="http://127.0.0.1:1/v1", api_key=settings.openai_api_key)  # type: ignore[arg-type]
    for text in (repr(settings), str(settings), repr(config), str(settings.model_dump())):
        assert API_KEY not in text
        assert "discord-tok-123" not in text


async def finished_video(w: World) -> Message:
    interaction = await w.fake.dispatch_slash(
        "video", {"prompt": "a kite over a beach"}, user=w.users[0], channel=w.channel
    )
    found: Message = await w.wait_for(
        lambda: (
            interaction.original
            if interaction.original is not None and video_attachment(interaction.original)
            else None
        )
    )
    return found


async def test_a_forged_click_from_another_guild_changes_nothing(w: World) -> None:
    other_guild = w.fake.add_guild("Elsewhere")
    other_channel = w.fake.add_text_channel(other_guild, "general")
    stranger = w.fake.add_user("stranger")
    w.fake.add_member(other_guild, stranger)
    async with w.bot():
        message = await finished_video(w)
        delete_id = next(b["custom_id"] for b in message.buttons if "delete" in b["custom_id"])
        # A click Discord would never send: a button of guild A, from a member of guild B.
        forged = await w.fake._dispatch_interaction(
            type=MESSAGE_COMPONENT,
            data={"custom_id": delete_id, "component_type": 2},
            user=stranger,
            channel=other_channel,
            member=w.fake.guild(other_guild.id).members[stranger.id],  # type: ignore[union-attr]
            source_message=message,
        )
        await w.wait_for(lambda: forged.acknowledged)
        await w.wait_for(lambda: forged.followups or forged.original is not None)
    assert not any(r.method == "DELETE" for r in w.sim.requests)
    assert video_attachment(message) is not None
    replies = [*forged.followups, forged.original]
    reply = next(m for m in replies if m is not None)
    assert reply.ephemeral


async def test_a_click_by_another_member_on_the_same_message_is_refused(w: World) -> None:
    async with w.bot():
        message = await finished_video(w)
        delete_id = next(b["custom_id"] for b in message.buttons if "delete" in b["custom_id"])
        click = await w.fake.dispatch_button(message, delete_id, user=w.users[1])
        await w.wait_for(lambda: click.acknowledged)
    assert not any(r.method == "DELETE" for r in w.sim.requests)
    assert video_attachment(message) is not None


async def test_files_the_bot_writes_are_readable_by_its_owner_only(w: World) -> None:
    photo = io.BytesIO()
    Image.new("RGB", (300, 200), (1, 2, 3)).save(photo, "PNG")
    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video",
            {"prompt": "a photo, moving", "reference": Upload("p.png", photo.getvalue())},
            user=w.users[0],
            channel=w.channel,
        )
        # Look while the job runs: the reference and the database are on disk then.
        await w.wait_for(lambda: any(w.data_dir.rglob("job-*")))
        files = [p for p in w.data_dir.rglob("*") if p.is_file()]
        await w.wait_for(
            lambda: interaction.original is not None and video_attachment(interaction.original)
        )
        files += [p for p in w.data_dir.rglob("*") if p.is_file()]
    assert files
    loose = {
        str(p): oct(stat.S_IMODE(p.stat().st_mode))
        for p in files
        if p.exists() and stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert loose == {}


async def test_paths_from_the_api_never_decide_where_files_go(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with w.bot() as bot:
        message = await finished_video(w)
        (job,) = await bot.store.recent_jobs(w.users[0].id, 1)
    assert video_attachment(message) is not None
    # The API's id is opaque: the files were named from the bot's own job id.
    assert job.api_video_id is not None
    assert all(job.api_video_id not in str(p) for p in w.data_dir.rglob("*"))
