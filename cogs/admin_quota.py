"""`/video-admin quota`: a member's or role's own budgets and exemptions in this server.

What an admin may raise is bounded by the owner's ceilings (bot/guildadmin.py); every change,
and every attempt past a ceiling, is in the audit. The group is part of `/video-admin`
(cogs/admin.py); this extension attaches it there while loaded.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.guildadmin import EVERY_LIMIT
from bot.money import parse_dollars
from bot.notice import Code, Notice, notice
from bot.quota.limits import ACTIVE_JOBS_LIMIT, COOLDOWN_LIMIT, USER_DAILY, USER_MONTHLY
from bot.quota.overrides import quota_overrides_for, stored_overrides
from bot.quota.wording import describe_overrides
from bot.services import Services
from cogs.admin import AdminSubgroup
from discordbot.budgets import COLOUR, add_report_fields, report_summary
from discordbot.checks import (
    ServerAdminGroup,
    Target,
    admin_of,
    describe_target,
    guild_of,
    target_of,
)
from discordbot.client import VideoBot
from discordbot.i18n import t, text
from discordbot.notices import explained, tell

log = logging.getLogger(__name__)


class QuotaCommands(
    ServerAdminGroup, name="quota", description="Budgets and exemptions of a member or role"
):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    async def show_target(
        self, interaction: discord.Interaction, target: Target, headline: Notice | None = None
    ) -> None:
        locale = interaction.locale
        quota = self.services.quota
        guild_id = guild_of(interaction)
        kind, target_id = target_of(target)
        overrides = await quota_overrides_for(self.services.store, guild_id, kind, target_id)
        lines = [text(locale, headline)] if headline else []
        lines.append(
            t(locale, "Overrides of {target} in this server:", target=describe_target(target))
        )
        # Each override, with what it counts as where it is past the owner's ceiling (stored
        # before the ceiling was set): the core's words.
        shown = stored_overrides(overrides, quota.defaults.ceilings)
        lines.append(text(locale, describe_overrides(shown)))
        if kind == "role" and target_id in quota.defaults.exempt_role_ids:
            lines.append(
                t(
                    locale,
                    "This role is exempt from every per-member limit by the bot's settings "
                    "({setting}).",
                    setting=Code("QUOTA_EXEMPT_ROLE_IDS"),
                )
            )
        if kind == "user":
            lines.append(
                t(
                    locale,
                    "A member's own override decides over their roles'; otherwise the most "
                    "generous of their roles' applies.",
                )
            )
        embed = discord.Embed(
            title=t(locale, "Member quota"), description="\n".join(lines), colour=COLOUR
        )
        if isinstance(target, discord.Member):
            role_ids = tuple(r.id for r in target.roles)
            report = await quota.usage_report(target.id, guild_id, role_ids)
            embed.add_field(
                name=t(locale, "What applies to them now"),
                value=report_summary(report, locale, you=False),
                inline=False,
            )
            add_report_fields(embed, report, locale)
        await tell(interaction, embed)

    @app_commands.command(
        name="set", description="Give a member or role its own budget, or exempt it"
    )
    @app_commands.describe(
        target="The member or role",
        limit="Which limit",
        dollars="The budget in dollars, e.g. 5 or 2.50 (24-hour and monthly budgets only)",
        exempt="True: no limit at all; False: lift an exemption (an amount keeps applying)",
    )
    @app_commands.choices(
        limit=[
            app_commands.Choice(name="24-hour budget", value=USER_DAILY),
            app_commands.Choice(name="monthly budget", value=USER_MONTHLY),
            app_commands.Choice(name="videos in progress at once", value=ACTIVE_JOBS_LIMIT),
            app_commands.Choice(name="cooldown between requests", value=COOLDOWN_LIMIT),
            app_commands.Choice(name="every limit (exempt only)", value=EVERY_LIMIT),
        ]
    )
    async def quota_set(
        self,
        interaction: discord.Interaction,
        target: Target,
        limit: str,
        dollars: app_commands.Range[str, 1, 32] | None = None,
        exempt: bool | None = None,
    ) -> None:
        guild_id = guild_of(interaction)
        kind, target_id = target_of(target)
        try:
            micros = None if dollars is None else parse_dollars(dollars)
            # Checked against the owner's ceilings; a refusal (OverCeiling) is audited too.
            await admin_of(self.services, interaction).set_quota(
                kind, target_id, limit, micros=micros, exempt=exempt
            )
        except ValueError as exc:
            await tell(interaction, explained(exc))
            return
        log.info(
            "guild %s: user %s set %s of %s %s (dollars=%s, exempt=%s)",
            guild_id,
            interaction.user.id,
            limit,
            kind,
            target_id,
            dollars,
            exempt,
        )
        await self.show_target(interaction, target, notice("Saved."))

    @app_commands.command(
        name="show", description="The overrides and current usage of a member or role"
    )
    @app_commands.describe(target="The member or role")
    async def quota_show(self, interaction: discord.Interaction, target: Target) -> None:
        await self.show_target(interaction, target)

    @app_commands.command(name="reset", description="Remove a member's or role's overrides")
    @app_commands.describe(target="The member or role")
    async def quota_reset(self, interaction: discord.Interaction, target: Target) -> None:
        guild_id = guild_of(interaction)
        kind, target_id = target_of(target)
        removed = await admin_of(self.services, interaction).reset_quota(kind, target_id)
        log.info(
            "guild %s: user %s reset %s %s (%d removed)",
            guild_id,
            interaction.user.id,
            kind,
            target_id,
            removed,
        )
        said = (
            notice(
                "Removed 1 override: this server's defaults apply again. "
                "Spending already made still counts."
            )
            if removed == 1
            else notice(
                "Removed {count} overrides: this server's defaults apply again. "
                "Spending already made still counts.",
                count=removed,
            )
        )
        await self.show_target(interaction, target, said)


class AdminQuota(AdminSubgroup):
    """`/video-admin quota`: its group, attached to `/video-admin` while loaded."""

    def __init__(self, bot: VideoBot) -> None:
        super().__init__(bot, QuotaCommands(bot.services))


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(AdminQuota(bot))
