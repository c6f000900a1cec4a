"""`/quota`: the caller's spending and what is left in each window, with reset times, privately.

The numbers come from `QuotaPolicy.usage_report`, which applies the guild's settings and the
member's (and their roles') overrides exactly as the next `/video` would be checked; the role ids
are the ones `/video` sends (`discordbot.requests.origin_of`). The wording is shared with
`/video-admin` (`discordbot/budgets.py`).
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.quota import QuotaReport
from bot.services import Services
from discordbot.budgets import COLOUR, add_report_fields, report_summary
from discordbot.client import VideoBot
from discordbot.i18n import Locale, t
from discordbot.requests import origin_of


def quota_embed(report: QuotaReport, locale: Locale = None) -> discord.Embed:
    embed = discord.Embed(
        title=t(locale, "Your video budget"),
        description=report_summary(report, locale),
        colour=COLOUR,
    )
    add_report_fields(embed, report, locale)
    embed.set_footer(
        text=t(
            locale,
            "Spending counts videos in progress and delivered; failed videos are refunded. "
            "Budgets count your requests in every server together.",
        )
    )
    return embed


class Quota(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.services: Services = bot.services

    @app_commands.command(
        name="quota", description="Your video spending and what is left, with reset times"
    )
    async def quota(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.services.quota.usage_report(
            interaction.user.id, interaction.guild_id, origin_of(interaction).role_ids
        )
        await interaction.edit_original_response(embed=quota_embed(report, interaction.locale))


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Quota(bot))
