"""Who may run the admin commands, checked at run time, and the options they share.

`/video-admin` needs Manage Server. Its default permissions hide it from everyone else, but a
server can show a command to anyone (Server Settings > Integrations), so every subcommand checks
again, on the permissions Discord resolved for this interaction (`interaction.permissions`, from
the payload, never a cache). Everything it changes is scoped to the guild the command runs in.

`/video-owner` is for the bot's owners (`OWNER_IDS`), from any guild or a DM, whatever their
permissions there: a server's Manage Server says nothing about who pays the bill.

A refusal raises `NotAllowed`, whose text the error handler (cogs/errors.py) shows privately.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.guildadmin import Actor, GuildAdmin
from bot.notice import Code, Notice, notice
from bot.services import Services
from bot.store import TargetKind

# A member or a role an override is for.
Target = discord.Member | discord.User | discord.Role


class NotAllowed(app_commands.CheckFailure):
    """A run-time permission refusal; its notice is shown to the member (cogs/errors.py)."""

    def __init__(self, message: Notice) -> None:
        self.notice = message
        super().__init__(message.plain())


def require_manage_guild(interaction: discord.Interaction[Any]) -> bool:
    if interaction.guild_id is None:
        raise NotAllowed(
            notice(
                "{command} works in a server, not in direct messages.",
                command=Code("/video-admin"),
            )
        )
    perms = interaction.permissions  # resolved by Discord for this interaction
    if not (perms.manage_guild or perms.administrator):
        raise NotAllowed(
            notice(
                "You need the **Manage Server** permission to use {command}.",
                command=Code("/video-admin"),
            )
        )
    return True


def require_owner(services: Services, interaction: discord.Interaction[Any]) -> bool:
    if not services.quota.is_owner(interaction.user.id):
        raise NotAllowed(
            notice("Only the bot's owners can use {command}.", command=Code("/video-owner"))
        )
    return True


class ServerAdminGroup(app_commands.Group):
    """A subcommand group of `/video-admin`: each of its commands checks Manage Server first
    (discord.py runs only the innermost group's check)."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return require_manage_guild(interaction)


def guild_of(interaction: discord.Interaction[Any]) -> int:
    assert interaction.guild_id is not None  # require_manage_guild ran first
    return interaction.guild_id


def admin_of(services: Services, interaction: discord.Interaction[Any]) -> GuildAdmin:
    """The core's admin changes for this guild, made (and audited) as the member running them."""
    user_id = interaction.user.id
    actor = Actor(user_id, owner=services.quota.is_owner(user_id))
    return GuildAdmin(
        services.store, services.quota.defaults.ceilings, guild_of(interaction), actor
    )


def target_of(target: Target) -> tuple[TargetKind, int]:
    return ("role" if isinstance(target, discord.Role) else "user"), target.id


def describe_target(target: Target) -> str:
    if isinstance(target, discord.Role):
        return "@everyone" if target.is_default() else target.mention
    return target.mention


class AnyChannel(app_commands.Transformer):
    """A channel option taken as Discord resolved it: an admin may list a channel the bot
    cannot see (yet), which discord.py's cache-backed channel types would refuse."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return [
            discord.ChannelType.text,
            discord.ChannelType.news,
            discord.ChannelType.voice,
            discord.ChannelType.forum,
            discord.ChannelType.media,
        ]

    async def transform(self, interaction: discord.Interaction[Any], value: Any, /) -> Any:
        return value
