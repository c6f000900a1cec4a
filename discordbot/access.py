"""The gate every interaction passes first: the owner's allowed servers and direct messages.

Checked for every application command by the tree and for every button by the buttons
themselves, before anything is read, downloaded or reserved, so a server the owner did not allow
can spend nothing. `/video-owner` stays open to the owners everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.access import Denied, check_access
from bot.notice import notice
from discordbot.host import Host
from discordbot.notices import tell

log = logging.getLogger(__name__)

# Commands the gate lets through everywhere (each checks its own caller).
UNGATED = frozenset({"video-owner"})

WORDS = {
    Denied.GUILD_NOT_ALLOWED: notice(
        "This bot is not enabled in this server. Its owner chooses the servers where it makes "
        "videos."
    ),
    Denied.DMS_OFF: notice(
        "This bot does not take requests in direct messages. Use it in a server where it is "
        "enabled."
    ),
}


def denial(interaction: discord.Interaction[Any]) -> Denied | None:
    host: Host = interaction.client
    settings = host.settings
    return check_access(
        interaction.guild_id,
        allowed_guilds=settings.allowed_guild_ids,
        allow_dms=settings.allow_dms,
    )


async def admitted(interaction: discord.Interaction[Any]) -> bool:
    """True when the interaction may go on; otherwise the member is told privately."""
    why = denial(interaction)
    if why is None:
        return True
    log.info(
        "refused interaction %s from user %s in guild %s: %s",
        interaction.id,
        interaction.user.id,
        interaction.guild_id,
        why.value,
    )
    await tell(interaction, WORDS[why])
    return False


class GatedTree(app_commands.CommandTree[Any]):
    """The bot's command tree: every command passes the gate first."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        command = interaction.command
        if command is not None and command.qualified_name.split(" ")[0] in UNGATED:
            return True
        return await admitted(interaction)


def command_contexts(allow_dms: bool) -> app_commands.AppCommandContext:
    """Where Discord offers the commands at all: servers, and the bot's DMs when allowed."""
    return app_commands.AppCommandContext(guild=True, dm_channel=allow_dms, private_channel=False)


def command_installs() -> app_commands.AppInstallationType:
    # Installed to servers only: a user-installed app would run in servers the owner never
    # allowed, outside any server's limits.
    return app_commands.AppInstallationType(guild=True, user=False)
