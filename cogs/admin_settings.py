"""`/video-admin settings`: where and how `/video` may be used in this server, and each member's
default limits there.

What an admin may raise is bounded by the owner's ceilings (bot/guildadmin.py); all the values of
one command are checked first and written in one transaction with their audit entry. The group is
part of `/video-admin` (cogs/admin.py); this extension attaches it there while loaded.
"""

from __future__ import annotations

import logging
import re
from typing import cast, get_args

import discord
from discord import app_commands

from bot.catalog import format_dollars
from bot.guildadmin import KEEP, ChannelAction
from bot.guildsettings import GuildSettings, load_guild_settings
from bot.money import parse_dollars
from bot.notice import Code, Notice, NoticeError, joined, notice
from bot.quota.limits import USER_DAILY, USER_MONTHLY
from bot.services import Services
from cogs.admin import AdminSubgroup
from discordbot.budgets import COLOUR
from discordbot.checks import AnyChannel, ServerAdminGroup, admin_of, guild_of
from discordbot.client import VideoBot
from discordbot.i18n import Locale, t, text
from discordbot.markup import code
from discordbot.notices import explained, tell

log = logging.getLogger(__name__)

MAX_SECONDS_CEILING = 3600
SAVED = notice("Saved.")
CHANNEL_ACTIONS: tuple[str, ...] = get_args(ChannelAction)


def _money(value: int | None, default: int) -> Notice | str:
    if value is None:
        return notice("{value} (bot default)", value=format_dollars(default))
    return format_dollars(value)


def _plain(value: float | None, default: float | None, unit: str) -> Notice | str:
    if value is None:
        shown = notice("none") if default is None else f"{default:g}{unit}"
        return notice("{value} (bot default)", value=shown)
    return f"{value:g}{unit}"


def _limit(value: int | None) -> Notice | str:
    return notice("no limit") if value is None else str(value)


def budget_value(text: str) -> int | None:
    """A budget option: dollars, or `default` (None) for the bot's setting."""
    return None if text.strip().lower() == "default" else parse_dollars(text)


class SettingsCommands(
    ServerAdminGroup, name="settings", description="Where and how /video may be used here"
):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.catalog = services.catalog

    def settings_embed(
        self, current: GuildSettings, headline: Notice | None = None, locale: Locale = None
    ) -> discord.Embed:
        defaults = self.services.quota.defaults
        if current.allowed_models is None:
            models = t(
                locale,
                "All: {models}",
                models=joined([Code(m.id) for m in self.catalog.models]),
            )
        else:
            models = ", ".join(code(m) for m in current.allowed_models)
        seconds = (
            t(locale, "Any length a model offers")
            if current.max_seconds is None
            else t(locale, "{seconds} seconds", seconds=current.max_seconds)
        )
        channels = (
            t(locale, "Every channel")
            if current.channel_ids is None
            else ", ".join(f"<#{c}>" for c in current.channel_ids)
        )
        embed = discord.Embed(
            title=t(locale, "Video settings for this server"),
            description=None if headline is None else text(locale, headline),
            colour=COLOUR,
        )
        embed.add_field(name=t(locale, "Models"), value=models, inline=False)
        embed.add_field(name=t(locale, "Longest video"), value=seconds, inline=False)
        embed.add_field(name=t(locale, "Channels where /video works"), value=channels, inline=False)
        limits = "\n".join(
            [
                t(
                    locale,
                    "24-hour budget: {value}",
                    value=_money(current.user_daily_micros, defaults.user_daily_micros),
                ),
                t(
                    locale,
                    "Monthly budget: {value}",
                    value=_money(current.user_monthly_micros, defaults.user_monthly_micros),
                ),
                t(
                    locale,
                    "Videos in progress at once: {value}",
                    value=_plain(current.max_active_per_user, defaults.max_active_per_user, ""),
                ),
                t(
                    locale,
                    "Cooldown between requests: {value}",
                    value=_plain(current.cooldown_seconds, defaults.cooldown_seconds, " s"),
                ),
            ]
        )
        embed.add_field(name=t(locale, "Each member's limits"), value=limits, inline=False)
        embed.add_field(
            name=t(locale, "Most admins may give (the bot owner's)"),
            value=self.ceilings_text(locale),
        )
        return embed

    def ceilings_text(self, locale: Locale = None) -> str:
        ceilings = self.services.quota.defaults.ceilings
        daily, monthly = ceilings.spend.get(USER_DAILY), ceilings.spend.get(USER_MONTHLY)
        return "\n".join(
            [
                t(
                    locale,
                    "24-hour budget: {value}",
                    value=_limit(None) if daily is None else format_dollars(daily),
                ),
                t(
                    locale,
                    "Monthly budget: {value}",
                    value=_limit(None) if monthly is None else format_dollars(monthly),
                ),
                t(locale, "Videos in progress at once: {value}", value=_limit(ceilings.max_active)),
                t(
                    locale,
                    "Shortest cooldown: {seconds} s",
                    seconds=f"{ceilings.min_cooldown or 0:g}",
                ),
                t(locale, "Exemptions: allowed")
                if ceilings.may_exempt
                else t(locale, "Exemptions: not allowed"),
            ]
        )

    async def show_settings(
        self, interaction: discord.Interaction, headline: Notice | None
    ) -> None:
        current = await load_guild_settings(self.services.store, guild_of(interaction))
        await tell(interaction, self.settings_embed(current, headline, interaction.locale))

    @app_commands.command(name="show", description="This server's video settings")
    async def settings_show(self, interaction: discord.Interaction) -> None:
        await self.show_settings(interaction, None)

    @app_commands.command(name="models", description="Which models /video may use here")
    @app_commands.describe(
        models="Model ids separated by commas or spaces, or `all`",
    )
    async def settings_models(
        self, interaction: discord.Interaction, models: app_commands.Range[str, 1, 500]
    ) -> None:
        guild_id = guild_of(interaction)
        words = [w for w in re.split(r"[\s,]+", models.strip()) if w]
        try:
            if [w.lower() for w in words] == ["all"]:
                await admin_of(self.services, interaction).set_models(None)
            else:
                unknown = [w for w in words if self.catalog.get(w) is None]
                if unknown:
                    raise NoticeError(
                        notice(
                            "Unknown model {unknown}. Models: {known}, or {all}.",
                            unknown=joined(map(Code, unknown)),
                            known=joined([Code(m.id) for m in self.catalog.models]),
                            all=Code("all"),
                        )
                    )
                await admin_of(self.services, interaction).set_models(words)
        except ValueError as exc:
            await tell(interaction, explained(exc))
            return
        log.info("guild %s: user %s allowed models %s", guild_id, interaction.user.id, words)
        await self.show_settings(interaction, SAVED)

    @app_commands.command(name="seconds", description="The longest video /video may make here")
    @app_commands.describe(maximum="Longest video in seconds; leave empty to allow any length")
    async def settings_seconds(
        self,
        interaction: discord.Interaction,
        maximum: app_commands.Range[int, 1, MAX_SECONDS_CEILING] | None = None,
    ) -> None:
        guild_id = guild_of(interaction)
        shortest = min((int(s) for s in self.catalog.all_seconds()), default=1)
        if maximum is not None and maximum < shortest:
            await tell(
                interaction,
                notice(
                    "No model makes videos that short: the shortest is {shortest} seconds.",
                    shortest=shortest,
                ),
            )
            return
        await admin_of(self.services, interaction).set_max_seconds(maximum)
        log.info("guild %s: user %s set max seconds %s", guild_id, interaction.user.id, maximum)
        await self.show_settings(interaction, SAVED)

    @app_commands.command(name="channels", description="Channels where /video may be used here")
    @app_commands.describe(
        action="Add a channel to the list, remove one, or clear the list (every channel)",
        channel="The channel to add or remove",
    )
    @app_commands.choices(
        action=[
            app_commands.Choice(name="add", value="add"),
            app_commands.Choice(name="remove", value="remove"),
            app_commands.Choice(name="clear (every channel)", value="clear"),
        ]
    )
    async def settings_channels(
        self,
        interaction: discord.Interaction,
        action: str,
        channel: app_commands.Transform[app_commands.AppCommandChannel, AnyChannel] | None = None,
    ) -> None:
        if action not in CHANNEL_ACTIONS:
            await tell(interaction, notice("Choose add, remove or clear."))
            return
        guild_id = guild_of(interaction)
        try:
            # Read and written in one transaction with its audit entry (bot/guildadmin.py).
            await admin_of(self.services, interaction).change_channels(
                cast("ChannelAction", action), None if channel is None else channel.id
            )
        except ValueError as exc:
            await tell(interaction, explained(exc))
            return
        current = await load_guild_settings(self.services.store, guild_id)
        listed = current.channel_ids
        log.info("guild %s: user %s set channels %s", guild_id, interaction.user.id, listed)
        headline = (
            SAVED
            if listed
            else notice("Saved: {command} can be used in every channel.", command=Code("/video"))
        )
        await tell(interaction, self.settings_embed(current, headline, interaction.locale))

    @app_commands.command(name="limits", description="Each member's default limits in this server")
    @app_commands.describe(
        daily="24-hour budget per member in dollars, or `default`",
        monthly="Monthly budget per member in dollars, or `default`",
        active="Videos one member may have in progress at once",
        cooldown="Seconds between one member's requests (0: none)",
        reset="Go back to the bot's defaults for all four",
    )
    async def settings_limits(  # noqa: PLR0917 - Discord passes options as parameters
        self,
        interaction: discord.Interaction,
        daily: app_commands.Range[str, 1, 32] | None = None,
        monthly: app_commands.Range[str, 1, 32] | None = None,
        active: app_commands.Range[int, 1, 100] | None = None,
        cooldown: app_commands.Range[int, 0, 86_400] | None = None,
        reset: bool = False,
    ) -> None:
        guild_id = guild_of(interaction)
        if not reset and daily is None and monthly is None and active is None and cooldown is None:
            await self.show_settings(
                interaction, notice("Nothing changed: give a limit to set, or reset.")
            )
            return
        try:
            # Every value is checked (input, then the owner's ceilings) before anything is
            # written, and all of them are written in one transaction with their audit entry.
            await admin_of(self.services, interaction).set_limits(
                daily=KEEP if daily is None else budget_value(daily),
                monthly=KEEP if monthly is None else budget_value(monthly),
                active=KEEP if active is None else active,
                cooldown=KEEP if cooldown is None else float(cooldown),
                reset=reset,
            )
        except ValueError as exc:
            await tell(interaction, explained(exc))
            return
        log.info(
            "guild %s: user %s set limits daily=%s monthly=%s active=%s cooldown=%s reset=%s",
            guild_id,
            interaction.user.id,
            daily,
            monthly,
            active,
            cooldown,
            reset,
        )
        await self.show_settings(interaction, SAVED)


class AdminSettings(AdminSubgroup):
    """`/video-admin settings`: its group, attached to `/video-admin` while loaded."""

    def __init__(self, bot: VideoBot) -> None:
        super().__init__(bot, SettingsCommands(bot.services))


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(AdminSettings(bot))
