"""One error handler for every app command: a short private message with a reference id for the
member, the details with the same id in the log. Never a traceback or raw exception text in
Discord. A cog, so loading it installs the handler and unloading it puts back the one before."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.notice import notice
from discordbot.checks import NotAllowed
from discordbot.client import VideoBot
from discordbot.notices import report, tell

ErrorHandler = Callable[
    [discord.Interaction[Any], app_commands.AppCommandError], Coroutine[Any, Any, None]
]


class CommandErrors(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self._previous: ErrorHandler | None = None

    async def cog_load(self) -> None:
        tree = self.bot.tree
        self._previous = tree.on_error
        tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        if self._previous is not None:
            self.bot.tree.on_error = self._previous  # type: ignore[method-assign]

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, NotAllowed):
            # Permission and ownership refusals, in the member's words.
            await tell(interaction, error.notice)
            return
        if isinstance(error, app_commands.CheckFailure):
            # discord.py's own checks word their refusals in English only.
            await tell(interaction, str(error) or notice("You can't use this command here."))
            return
        command = "/" + (interaction.command.qualified_name if interaction.command else "?")
        await report(interaction, error, command)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(CommandErrors(bot))
