"""`/video-owner`: for the bot's owners (`OWNER_IDS`), the bot-wide daily spending cap and the
audit of its changes. Reachable from any server or a DM, whatever the owner's permissions there
and whatever ALLOW_DMS says for members; no default permissions (a server's Manage Server says
nothing about who pays the bill); the owner check runs at run time (discordbot/checks.py)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.catalog import format_dollars
from bot.money import parse_dollars
from bot.services import Services
from discordbot.audit import AUDIT_PAGE, audit_embed
from discordbot.budgets import COLOUR, window_text
from discordbot.checks import require_owner
from discordbot.client import VideoBot
from discordbot.i18n import t
from discordbot.notices import explained, tell

log = logging.getLogger(__name__)


@app_commands.allowed_contexts(guilds=True, dms=True)
class Owner(
    commands.GroupCog,
    group_name="video-owner",
    group_description="For the bot's owners: the bot-wide spending cap",
):
    def __init__(self, bot: VideoBot) -> None:
        self.services: Services = bot.services

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return require_owner(self.services, interaction)

    @app_commands.command(
        name="cap", description="The bot-wide daily spending cap: show or change it"
    )
    @app_commands.describe(
        dollars="New cap per UTC day in dollars, e.g. 25 (0 pauses all generation)",
        reset="Go back to the cap in the bot's settings (QUOTA_BOT_DAILY_DOLLARS)",
    )
    async def cap(
        self,
        interaction: discord.Interaction,
        dollars: app_commands.Range[str, 1, 32] | None = None,
        reset: bool = False,
    ) -> None:
        locale = interaction.locale
        quota = self.services.quota
        headline: str | None = None
        try:
            if reset:
                await quota.set_bot_daily_cap(None, by=interaction.user.id)
                headline = t(locale, "Back to the cap in the bot's settings.")
            elif dollars is not None:
                await quota.set_bot_daily_cap(parse_dollars(dollars), by=interaction.user.id)
                headline = t(locale, "Saved.")
        except ValueError as exc:
            await tell(interaction, explained(exc))
            return
        if headline is not None:
            log.info(
                "owner %s set the bot-wide daily cap (dollars=%s, reset=%s)",
                interaction.user.id,
                dollars,
                reset,
            )
        status = await quota.bot_status(self.services.store.clock())
        embed = discord.Embed(
            title=t(locale, "Bot-wide daily spending cap"), description=headline, colour=COLOUR
        )
        embed.add_field(
            name=t(locale, "Today (UTC)"), value=window_text(status, locale), inline=False
        )
        setting = quota.defaults.bot_daily_micros
        embed.add_field(
            name=t(locale, "In the bot's settings"), value=format_dollars(setting), inline=False
        )
        embed.set_footer(text=t(locale, "Every server's spending counts against it."))
        await tell(interaction, embed)

    @app_commands.command(name="audit", description="Changes to the bot-wide cap, newest first")
    @app_commands.describe(page="Which page (newest first)")
    async def audit(
        self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 10_000] = 1
    ) -> None:
        store = self.services.store
        total = await store.count_audit(None)
        entries = await store.audit_entries(None, AUDIT_PAGE, (page - 1) * AUDIT_PAGE)
        locale = interaction.locale
        title = t(locale, "Bot-wide changes")
        await tell(interaction, audit_embed(title, entries, page, total, locale))


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Owner(bot))
