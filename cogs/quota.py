"""`/quota`: the caller's spending and what is left in each window, with reset times, privately.

The numbers come from `QuotaPolicy.usage_report`, which applies the guild's settings and the
member's (and their roles') overrides exactly as the next `/video` would be checked; the role ids
are the ones `/video` sends (`cogs.video.origin_of`). The embed helpers here are shared with
`/video-admin` (cogs.admin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.catalog import format_dollars
from bot.quota import QuotaReport, WindowUsage, discord_time
from cogs.video import origin_of

if TYPE_CHECKING:
    from discordbot.client import VideoBot

COLOUR = discord.Colour.blurple()


def capitalised(label: str) -> str:
    return label[:1].upper() + label[1:]


def window_text(window: WindowUsage) -> str:
    """One spending window: used, ceiling, what is left, when it comes back."""
    used = format_dollars(window.used_micros)
    left = window.left_micros
    if window.max_micros is None or left is None:
        return f"{used} used · no limit for you here"
    text = f"{used} of {format_dollars(window.max_micros)} used · **{format_dollars(left)} left**"
    if window.rolling:
        if window.resets_at is None:
            return f"{text}\nEach request counts for 24 hours after it is made."
        return (
            f"{text}\nBudget comes back as requests age out of the last 24 hours; "
            f"the next {discord_time(window.resets_at)}."
        )
    if window.resets_at is not None:
        return f"{text}\nResets {discord_time(window.resets_at)}."
    return text


def report_summary(report: QuotaReport, *, you: bool = True) -> str:
    """The one-line answer to "can I make a video now?"."""
    subject = "You" if you else "They"
    lines: list[str] = []
    left = report.left_micros
    if left > 0:
        lines.append(f"A video costing up to **{format_dollars(left)}** can be started now.")
    else:
        lines.append("Nothing is left to spend right now; see below for when budget comes back.")
    if report.max_active is not None and report.active_jobs >= report.max_active:
        lines.append(
            f"{subject} have {report.active_jobs} of {report.max_active} videos in progress, "
            "the most allowed at once."
        )
    if report.next_request_at is not None:
        lines.append(f"The next request can be made {discord_time(report.next_request_at)}.")
    return "\n".join(lines)


def add_report_fields(embed: discord.Embed, report: QuotaReport) -> None:
    for window in report.windows:
        embed.add_field(name=capitalised(window.label), value=window_text(window), inline=False)
    embed.add_field(
        name="Bot-wide daily cap (shared by everyone)", value=window_text(report.bot), inline=False
    )
    if report.max_active is None:
        active = f"{report.active_jobs} · no limit here"
    else:
        active = f"{report.active_jobs} of {report.max_active}"
    embed.add_field(name="Videos in progress", value=active)
    if report.cooldown_seconds is None:
        cooldown = "None"
    else:
        cooldown = f"{report.cooldown_seconds:g} s between requests"
    embed.add_field(name="Cooldown", value=cooldown)


def quota_embed(report: QuotaReport) -> discord.Embed:
    embed = discord.Embed(
        title="Your video budget", description=report_summary(report), colour=COLOUR
    )
    add_report_fields(embed, report)
    embed.set_footer(
        text="Spending counts videos in progress and delivered; failed videos are refunded. "
        "Budgets count your requests in every server together."
    )
    return embed


def build_quota_command(bot: VideoBot) -> app_commands.Command[Any, ..., None]:
    async def quota(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await bot.quota.usage_report(
            interaction.user.id, interaction.guild_id, origin_of(interaction).role_ids
        )
        await interaction.edit_original_response(embed=quota_embed(report))

    return app_commands.Command(
        name="quota",
        description="Your video spending and what is left, with reset times",
        callback=quota,
    )


async def setup(bot: VideoBot) -> None:
    bot.tree.add_command(build_quota_command(bot))


async def teardown(bot: VideoBot) -> None:
    bot.tree.remove_command("quota")
