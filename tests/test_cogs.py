"""The commands as discord.py extensions, end to end: the real bot on the fake Discord loads every
Cog from one list, each takes its commands (and the error handler) away when unloaded and puts
them back when loaded again; the Delete button's deletion is recorded by the core; an error after
`/video`'s public placeholder is told only to the member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from discord import app_commands

from discordbot.client import EXTENSIONS, VideoBot
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.fakediscord.state import Message

COMMANDS = ["video", "videos", "quota", "video-admin", "video-owner", "Animate image"]


@pytest.fixture
async def w(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, users=2) as env:
        yield env


def names(bot: VideoBot) -> list[str]:
    return [c.name for c in bot.tree.get_commands()]


def admin_children(bot: VideoBot) -> list[str]:
    admin = bot.tree.get_command("video-admin")
    assert isinstance(admin, app_commands.Group)
    return [c.name for c in admin.commands]


def handles_errors(bot: VideoBot) -> bool:
    """Whether the tree's error handler is the bot's (cogs/errors.py), not discord.py's."""
    handler: Any = bot.tree.on_error
    return getattr(handler, "__func__", None) is not app_commands.CommandTree.on_error


async def test_every_command_comes_and_goes_with_its_extension(w: World) -> None:
    async with w.bot() as bot:
        assert list(bot.extensions) == list(EXTENSIONS)
        assert names(bot) == COMMANDS
        assert admin_children(bot) == ["quota", "settings", "usage", "audit"]
        assert handles_errors(bot)
        synced = bot.command_hash()

        for extension in reversed(EXTENSIONS):
            await bot.unload_extension(extension)
        assert names(bot) == []
        assert not handles_errors(bot)

        for extension in EXTENSIONS:
            await bot.load_extension(extension)
        assert names(bot) == COMMANDS
        assert admin_children(bot) == ["quota", "settings", "usage", "audit"]
        assert handles_errors(bot)
        # The same commands, options and order as synced: nothing to sync again.
        assert bot.command_hash() == synced


def delivered(interaction: Interaction) -> Message | None:
    original = interaction.original
    if original is not None and video_attachment(original) and original.buttons:
        return original
    return None


async def test_a_video_deleted_with_its_button_is_recorded_with_who_deleted_it(w: World) -> None:
    async with w.bot() as bot:
        made = await w.fake.dispatch_slash(
            "video", {"prompt": "a kite on a string"}, user=w.user, channel=w.channel
        )
        message: Message = await w.wait_for(lambda: delivered(made))
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
        assert job.deleted_at is None
        await w.fake.dispatch_button(message, f"job:{job.id}:delete", user=w.user)
        await w.wait_for(lambda: not message.attachments)
        gone = await bot.store.get_job(job.id)
    assert gone is not None and gone.deleted_at is not None
    assert gone.deleted_by == w.user.id
    assert str(job.api_video_id) not in w.sim.videos


async def test_an_error_behind_the_public_placeholder_is_told_only_to_the_member(
    w: World,
) -> None:
    async with w.bot() as bot:

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("internal detail: the queue is on fire")

        bot.jobs.submit = broken  # type: ignore[method-assign]
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "a lighthouse at dusk"}, user=w.user, channel=w.channel
        )

        def private_notice() -> Message | None:
            return next((m for m in interaction.followups if m.ephemeral and m.embed), None)

        notice: Message = await w.wait_for(private_notice)
        await w.wait_for(lambda: interaction.original is None or interaction.original.deleted)
    assert "reference" in str(notice.embed)
    assert "on fire" not in str(notice.embed)
    assert [m for m in w.messages() if not m.ephemeral and not m.deleted] == []
