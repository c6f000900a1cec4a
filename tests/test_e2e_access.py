"""Who may use the bot at all: the owner's allowed servers and direct messages (end to end)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.access import Denied, check_access
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, FakeDiscordError

GUILD_CONTEXT, BOT_DM_CONTEXT = 0, 1


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url) as env:
        yield env


def test_the_rule() -> None:
    assert check_access(5, allowed_guilds=[], allow_dms=False) is None
    assert check_access(5, allowed_guilds=[5, 6], allow_dms=False) is None
    assert check_access(7, allowed_guilds=[5, 6], allow_dms=True) is Denied.GUILD_NOT_ALLOWED
    assert check_access(None, allowed_guilds=[5], allow_dms=False) is Denied.DMS_OFF
    assert check_access(None, allowed_guilds=[5], allow_dms=True) is None


async def test_a_server_not_allowed_is_refused_privately_and_spends_nothing(w: World) -> None:
    async with w.bot(allowed_guild_ids=[w.guild.id + 1]) as bot:
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "a fox in the snow"}, user=w.user, channel=w.channel
        )
        await w.wait_for(lambda: interaction.original is not None)
        assert await bot.store.count_jobs(w.user.id) == 0
    original = interaction.original
    assert original is not None and original.ephemeral
    assert "not enabled in this server" in str(original.embed)
    assert [m for m in w.messages() if not m.ephemeral and not m.deleted] == []
    assert w.sim.requests == []


async def test_an_allowed_server_is_served(w: World) -> None:
    async with w.bot(allowed_guild_ids=[w.guild.id]):
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "a fox in the snow"}, user=w.user, channel=w.channel
        )
        await w.wait_for(
            lambda: interaction.original is not None and video_attachment(interaction.original)
        )


async def test_direct_messages_are_off_unless_the_owner_allows_them(w: World) -> None:
    dm = w.fake.dm_channel(w.user)
    # Global commands, as a bot without DISCORD_GUILD_IDS registers them.
    async with w.bot(discord_guild_ids=[]):
        video = w.fake.command("video")
        owner = w.fake.command("video-owner")
        assert video is not None and owner is not None
        assert video.raw["contexts"] == [GUILD_CONTEXT]
        # Owners reach their command anywhere; members' commands are servers only.
        assert sorted(owner.raw["contexts"]) == [GUILD_CONTEXT, BOT_DM_CONTEXT]
        assert video.raw["integration_types"] == [0]  # server installs only, no user installs
        with pytest.raises(FakeDiscordError, match="not available in DMs"):
            await w.fake.dispatch_slash("video", {"prompt": "a fox"}, user=w.user, channel=dm)
    assert w.sim.requests == []

    async with w.bot(discord_guild_ids=[], allow_dms=True):
        video = w.fake.command("video")
        assert video is not None
        assert sorted(video.raw["contexts"]) == [GUILD_CONTEXT, BOT_DM_CONTEXT]
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "a fox in the snow"}, user=w.user, channel=dm
        )
        await w.wait_for(
            lambda: interaction.original is not None and video_attachment(interaction.original)
        )


async def test_start_up_warns_when_anyone_can_add_the_bot(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="discordbot.client")
    async with w.bot():
        pass
    warnings = [r.getMessage() for r in caplog.records if r.name == "discordbot.client"]
    assert any("application is public" in m and "ALLOWED_GUILD_IDS" in m for m in warnings)
    caplog.clear()
    async with w.bot(allowed_guild_ids=[w.guild.id]):
        pass
    assert not [r for r in caplog.records if "application is public" in r.getMessage()]
