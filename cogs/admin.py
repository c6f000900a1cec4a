"""`/video-admin`: a server's video budgets and settings, for members with Manage Server.

This cog is the `/video-admin` group itself, with the server's spending (`usage`) and the audit
of its changes (`audit`). Its subcommand groups are extensions of their own, loaded after it,
which attach their group here while they are loaded: `quota` (cogs/admin_quota.py) and
`settings` (cogs/admin_settings.py). Every subcommand checks Manage Server at run time
(discordbot/checks.py); everything is scoped to the guild it runs in; replies are private.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.catalog import format_dollars
from bot.services import Services
from discordbot.audit import AUDIT_PAGE, audit_embed
from discordbot.budgets import COLOUR
from discordbot.checks import guild_of, require_manage_guild
from discordbot.client import VideoBot
from discordbot.i18n import t
from discordbot.notices import tell

TOP_MEMBERS = 10


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class ServerAdmin(
    commands.GroupCog,
    group_name="video-admin",
    group_description="Video budgets and settings for this server (Manage Server)",
):
    def __init__(self, bot: VideoBot) -> None:
        self.services: Services = bot.services

    @property
    def group(self) -> app_commands.Group:
        group = self.app_command
        assert group is not None  # a GroupCog is a group
        return group

    def attach(self, subgroup: app_commands.Group) -> None:
        """Add a subcommand group ahead of this cog's own commands (the order members have
        seen: quota, settings, usage, audit)."""
        own = [c for c in self.group.commands if isinstance(c, app_commands.Command)]
        for command in own:
            self.group.remove_command(command.name)
        self.group.add_command(subgroup)
        for command in own:
            self.group.add_command(command)

    def detach(self, subgroup: app_commands.Group) -> None:
        self.group.remove_command(subgroup.name)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return require_manage_guild(interaction)

    @app_commands.command(name="usage", description="Spending in this server today and this month")
    async def usage(self, interaction: discord.Interaction) -> None:
        locale = interaction.locale
        report = await self.services.quota.guild_usage(guild_of(interaction), top=TOP_MEMBERS)
        embed = discord.Embed(title=t(locale, "Video spending in this server"), colour=COLOUR)
        embed.add_field(name=t(locale, "Today (UTC)"), value=format_dollars(report.today_micros))
        embed.add_field(
            name=t(locale, "This month (UTC)"), value=format_dollars(report.month_micros)
        )
        top = "\n".join(
            f"{rank}. <@{user_id}> · {format_dollars(micros)}"
            for rank, (user_id, micros) in enumerate(report.top_month, start=1)
        )
        embed.add_field(
            name=t(locale, "Top members this month"),
            value=top or t(locale, "Nobody has spent anything."),
            inline=False,
        )
        embed.set_footer(
            text=t(locale, "Counts videos in progress and delivered; failed ones are refunded.")
        )
        await tell(interaction, embed)

    @app_commands.command(
        name="audit", description="Who changed this server's video limits, and how"
    )
    @app_commands.describe(page="Which page (newest first)")
    async def audit(
        self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 10_000] = 1
    ) -> None:
        guild_id = guild_of(interaction)
        store = self.services.store
        total = await store.count_audit(guild_id)
        entries = await store.audit_entries(guild_id, AUDIT_PAGE, (page - 1) * AUDIT_PAGE)
        locale = interaction.locale
        title = t(locale, "Changes in this server")
        await tell(interaction, audit_embed(title, entries, page, total, locale))


def server_admin(bot: VideoBot) -> ServerAdmin | None:
    """The loaded `/video-admin` cog, which a subcommand group's extension attaches to."""
    cog = bot.get_cog(ServerAdmin.__cog_name__)
    return cog if isinstance(cog, ServerAdmin) else None


class AdminSubgroup(commands.Cog):
    """A subcommand group of `/video-admin` as an extension of its own: attached to the loaded
    `/video-admin` cog while this cog is loaded, detached when it is unloaded."""

    def __init__(self, bot: VideoBot, group: app_commands.Group) -> None:
        self.bot = bot
        self.group = group

    async def cog_load(self) -> None:
        admin = server_admin(self.bot)
        if admin is None:
            raise RuntimeError("cogs.admin is loaded before the groups of /video-admin")
        admin.attach(self.group)

    async def cog_unload(self) -> None:
        admin = server_admin(self.bot)
        if admin is not None:
            admin.detach(self.group)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(ServerAdmin(bot))
