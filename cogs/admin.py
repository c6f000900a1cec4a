"""`/video-admin` (a server's budgets and settings) and `/video-owner` (the bot-wide cap).

`/video-admin` needs Manage Server. Its default permissions hide it from everyone else, but a
server can show a command to anyone (Server Settings > Integrations), so every subcommand checks
again at run time, on the permissions Discord resolved for this interaction
(`interaction.permissions`, from the payload, never a cache). Everything it changes is scoped to
the guild the command runs in.

`/video-owner` is for the bot's owners (`OWNER_IDS`), from any guild or a DM, whatever their
permissions there: it has no default permissions (a server's Manage Server says nothing about
who pays the bill), and the owner check runs at run time.

What an admin may raise is bounded by the owner's ceilings (bot.ceilings); every change, and
every attempt past a ceiling, is in the audit (`/video-admin audit` for the guild's,
`/video-owner audit` for the bot-wide cap's).

Replies are ephemeral. Amounts are shown with `format_dollars`, times as `<t:UNIX:R>`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.catalog import format_dollars
from bot.ceilings import (
    EVERY_LIMIT,
    KEEP,
    Actor,
    GuildAdmin,
    action_label,
    change_lines,
)
from bot.quota import (
    ACTIVE_JOBS_LIMIT,
    COOLDOWN_LIMIT,
    OVERRIDABLE_LIMITS,
    USER_DAILY,
    USER_MONTHLY,
    GuildSettings,
    discord_time,
    load_guild_settings,
    parse_dollars,
    quota_overrides_for,
)
from bot.store import QuotaOverride, TargetKind
from bot.store.audit import AuditEntry
from bot.store.quota import NO_CEILINGS, Ceilings
from cogs.quota import COLOUR, add_report_fields, report_summary, window_text
from discordbot.render import notice_embed

if TYPE_CHECKING:
    from discordbot.client import VideoBot

log = logging.getLogger(__name__)

MAX_SECONDS_CEILING = 3600
TOP_MEMBERS = 10
AUDIT_PAGE = 8
AUDIT_ENTRY_CHARS = 400

Target = discord.Member | discord.User | discord.Role


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

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> Any:
        return value


class NotAllowed(app_commands.CheckFailure):
    """A run-time permission refusal; its text is shown to the user (cogs.errors)."""


# ---------------------------------------------------------------------- run-time checks


def require_manage_guild(interaction: discord.Interaction) -> bool:
    if interaction.guild_id is None:
        raise NotAllowed("`/video-admin` works in a server, not in direct messages.")
    perms = interaction.permissions  # resolved by Discord for this interaction
    if not (perms.manage_guild or perms.administrator):
        raise NotAllowed("You need the **Manage Server** permission to use `/video-admin`.")
    return True


Check = Callable[[discord.Interaction], bool]


def owner_check(bot: VideoBot) -> Check:
    def require_owner(interaction: discord.Interaction) -> bool:
        if not bot.quota.is_owner(interaction.user.id):
            raise NotAllowed("Only the bot's owners can use `/video-owner`.")
        return True

    return require_owner


def guard(group: app_commands.Group, check: Check) -> None:
    """Add `check` to every command under `group`, however deep."""
    for command in group.walk_commands():
        if isinstance(command, app_commands.Command):
            command.add_check(check)


# ---------------------------------------------------------------------- replies


async def answer(interaction: discord.Interaction, embed: discord.Embed) -> None:
    if interaction.response.is_done():
        await interaction.edit_original_response(embed=embed)
    else:
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def refuse(interaction: discord.Interaction, text: str) -> None:
    await answer(interaction, notice_embed(text))


def guild_of(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # require_manage_guild ran first
    return interaction.guild_id


def target_of(target: Target) -> tuple[TargetKind, int]:
    return ("role" if isinstance(target, discord.Role) else "user"), target.id


def describe_target(target: Target) -> str:
    if isinstance(target, discord.Role):
        return "@everyone" if target.is_default() else target.mention
    return target.mention


def _limit_order(override: QuotaOverride) -> int:
    names = list(OVERRIDABLE_LIMITS)
    return names.index(override.limit_name) if override.limit_name in names else len(names)


def overrides_text(overrides: Sequence[QuotaOverride], ceilings: Ceilings = NO_CEILINGS) -> str:
    """The stored overrides, each with what it counts as where it is past the owner's ceiling
    (stored before the ceiling was set)."""
    lines: list[str] = []
    for o in sorted(overrides, key=_limit_order):
        label = OVERRIDABLE_LIMITS.get(o.limit_name, o.limit_name)
        ceiling = ceilings.spend.get(o.limit_name)
        if o.exempt:
            value = "exempt"
            if o.max_micros is not None:
                value += f" ({format_dollars(o.max_micros)} applies if the exemption is lifted)"
            if not ceilings.may_exempt:
                value += " — not allowed by the bot's owner: counts as the most admins may give"
        elif o.max_micros is not None:
            value = format_dollars(o.max_micros)
            if ceiling is not None and o.max_micros > ceiling:
                value += f" — counts as {format_dollars(ceiling)}, the bot owner's ceiling"
        else:
            value = "default"
        lines.append(f"• {label}: {value}")
    return "\n".join(lines) or "None: this server's defaults apply."


def _money(value: int | None, default: int) -> str:
    if value is None:
        return f"{format_dollars(default)} (bot default)"
    return format_dollars(value)


def audit_target(target: str | None) -> str:
    kind, _, raw = (target or "").partition(":")
    if not raw.isdigit():
        return ""
    return f" for <@&{raw}>" if kind == "role" else f" for <@{raw}>"


def audit_text(entry: AuditEntry) -> str:
    """One entry: when, who, what, and each value before and after."""
    who = f"<@{entry.actor_id}>" + (" (owner)" if entry.actor_kind == "owner" else "")
    head = f"{discord_time(entry.at, 'f')} {who} {action_label(entry.action)}"
    head += audit_target(entry.target)
    if entry.refused:
        head = f"**Refused:** {head}"
    lines = [head]
    if entry.refused and entry.reason:
        lines.append(f"  _{entry.reason}_")
    lines += [f"  {line}" for line in change_lines(entry)]
    text = "\n".join(lines)
    return text if len(text) <= AUDIT_ENTRY_CHARS else text[: AUDIT_ENTRY_CHARS - 1] + "…"


def audit_embed(title: str, entries: Sequence[AuditEntry], page: int, total: int) -> discord.Embed:
    pages = max(1, -(-total // AUDIT_PAGE))
    body = "\n\n".join(audit_text(e) for e in entries) or "No changes recorded."
    embed = discord.Embed(title=title, description=body, colour=COLOUR)
    embed.set_footer(text=f"Page {page} of {pages} · {total} entries, newest first")
    return embed


def _plain(value: float | None, default: float | None, unit: str) -> str:
    if value is None:
        shown = "none" if default is None else f"{default:g}{unit}"
        return f"{shown} (bot default)"
    return f"{value:g}{unit}"


# ---------------------------------------------------------------------- /video-admin


def build_admin_group(bot: VideoBot) -> app_commands.Group:
    catalog = bot.catalog
    admin = app_commands.Group(
        name="video-admin",
        description="Video budgets and settings for this server (Manage Server)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )
    quota = app_commands.Group(
        name="quota", description="Budgets and exemptions of a member or role", parent=admin
    )
    settings = app_commands.Group(
        name="settings", description="Where and how /video may be used here", parent=admin
    )

    def admin_of(interaction: discord.Interaction) -> GuildAdmin:
        actor = Actor(interaction.user.id, owner=bot.quota.is_owner(interaction.user.id))
        return GuildAdmin(bot.store, bot.quota.defaults.ceilings, guild_of(interaction), actor)

    async def show_target(
        interaction: discord.Interaction, target: Target, headline: str | None = None
    ) -> None:
        guild_id = guild_of(interaction)
        kind, target_id = target_of(target)
        overrides = await quota_overrides_for(bot.store, guild_id, kind, target_id)
        lines = [headline] if headline else []
        lines.append(f"Overrides of {describe_target(target)} in this server:")
        lines.append(overrides_text(overrides, bot.quota.defaults.ceilings))
        if kind == "role" and target_id in bot.quota.defaults.exempt_role_ids:
            lines.append(
                "This role is exempt from every per-member limit by the bot's settings "
                "(`QUOTA_EXEMPT_ROLE_IDS`)."
            )
        if kind == "user":
            lines.append(
                "A member's own override decides over their roles'; otherwise the most "
                "generous of their roles' applies."
            )
        embed = discord.Embed(title="Member quota", description="\n".join(lines), colour=COLOUR)
        if isinstance(target, discord.Member):
            role_ids = tuple(r.id for r in target.roles)
            report = await bot.quota.usage_report(target.id, guild_id, role_ids)
            embed.add_field(
                name="What applies to them now",
                value=report_summary(report, you=False),
                inline=False,
            )
            add_report_fields(embed, report)
        await answer(interaction, embed)

    @quota.command(name="set", description="Give a member or role its own budget, or exempt it")
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
            await admin_of(interaction).set_quota(
                kind, target_id, limit, micros=micros, exempt=exempt
            )
        except ValueError as exc:
            await refuse(interaction, str(exc))
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
        await show_target(interaction, target, "Saved.")

    @quota.command(name="show", description="The overrides and current usage of a member or role")
    @app_commands.describe(target="The member or role")
    async def quota_show(interaction: discord.Interaction, target: Target) -> None:
        await show_target(interaction, target)

    @quota.command(name="reset", description="Remove a member's or role's overrides")
    @app_commands.describe(target="The member or role")
    async def quota_reset(interaction: discord.Interaction, target: Target) -> None:
        guild_id = guild_of(interaction)
        kind, target_id = target_of(target)
        removed = await admin_of(interaction).reset_quota(kind, target_id)
        log.info(
            "guild %s: user %s reset %s %s (%d removed)",
            guild_id,
            interaction.user.id,
            kind,
            target_id,
            removed,
        )
        plural = "" if removed == 1 else "s"
        await show_target(
            interaction,
            target,
            f"Removed {removed} override{plural}: this server's defaults apply again. "
            "Spending already made still counts.",
        )

    @admin.command(name="usage", description="Spending in this server today and this month")
    async def usage(interaction: discord.Interaction) -> None:
        guild_id = guild_of(interaction)
        report = await bot.quota.guild_usage(guild_id, top=TOP_MEMBERS)
        embed = discord.Embed(title="Video spending in this server", colour=COLOUR)
        embed.add_field(name="Today (UTC)", value=format_dollars(report.today_micros))
        embed.add_field(name="This month (UTC)", value=format_dollars(report.month_micros))
        top = "\n".join(
            f"{rank}. <@{user_id}> · {format_dollars(micros)}"
            for rank, (user_id, micros) in enumerate(report.top_month, start=1)
        )
        embed.add_field(
            name="Top members this month", value=top or "Nobody has spent anything.", inline=False
        )
        embed.set_footer(text="Counts videos in progress and delivered; failed ones are refunded.")
        await answer(interaction, embed)

    # ------------------------------------------------------------ settings

    def settings_embed(current: GuildSettings, headline: str | None = None) -> discord.Embed:
        defaults = bot.quota.defaults
        if current.allowed_models is None:
            models = "All: " + ", ".join(f"`{m.id}`" for m in catalog.models)
        else:
            models = ", ".join(f"`{m}`" for m in current.allowed_models)
        seconds = (
            "Any length a model offers"
            if current.max_seconds is None
            else f"{current.max_seconds} seconds"
        )
        channels = (
            "Every channel"
            if current.channel_ids is None
            else ", ".join(f"<#{c}>" for c in current.channel_ids)
        )
        embed = discord.Embed(
            title="Video settings for this server", description=headline, colour=COLOUR
        )
        embed.add_field(name="Models", value=models, inline=False)
        embed.add_field(name="Longest video", value=seconds, inline=False)
        embed.add_field(name="Channels where /video works", value=channels, inline=False)
        limits = "\n".join(
            [
                "24-hour budget: " + _money(current.user_daily_micros, defaults.user_daily_micros),
                "Monthly budget: "
                + _money(current.user_monthly_micros, defaults.user_monthly_micros),
                "Videos in progress at once: "
                + _plain(current.max_active_per_user, defaults.max_active_per_user, ""),
                "Cooldown between requests: "
                + _plain(current.cooldown_seconds, defaults.cooldown_seconds, " s"),
            ]
        )
        embed.add_field(name="Each member's limits", value=limits, inline=False)
        embed.add_field(name="Most admins may give (the bot owner's)", value=ceilings_text())
        return embed

    def ceilings_text() -> str:
        ceilings = bot.quota.defaults.ceilings
        daily, monthly = ceilings.spend.get(USER_DAILY), ceilings.spend.get(USER_MONTHLY)
        return "\n".join(
            [
                "24-hour budget: " + ("no limit" if daily is None else format_dollars(daily)),
                "Monthly budget: " + ("no limit" if monthly is None else format_dollars(monthly)),
                "Videos in progress at once: "
                + ("no limit" if ceilings.max_active is None else str(ceilings.max_active)),
                f"Shortest cooldown: {ceilings.min_cooldown or 0:g} s",
                "Exemptions: " + ("allowed" if ceilings.may_exempt else "not allowed"),
            ]
        )

    async def show_settings(interaction: discord.Interaction, headline: str | None) -> None:
        current = await load_guild_settings(bot.store, guild_of(interaction))
        await answer(interaction, settings_embed(current, headline))

    @settings.command(name="show", description="This server's video settings")
    async def settings_show(interaction: discord.Interaction) -> None:
        await show_settings(interaction, None)

    @settings.command(name="models", description="Which models /video may use here")
    @app_commands.describe(
        models="Model ids separated by commas or spaces, or `all`",
    )
    async def settings_models(
        interaction: discord.Interaction, models: app_commands.Range[str, 1, 500]
    ) -> None:
        guild_id = guild_of(interaction)
        words = [w for w in re.split(r"[\s,]+", models.strip()) if w]
        try:
            if [w.lower() for w in words] == ["all"]:
                await admin_of(interaction).set_models(None)
            else:
                unknown = [w for w in words if catalog.get(w) is None]
                if unknown:
                    known = ", ".join(f"`{m.id}`" for m in catalog.models)
                    bad = ", ".join(f"`{w}`" for w in unknown)
                    raise ValueError(f"Unknown model {bad}. Models: {known}, or `all`.")
                await admin_of(interaction).set_models(words)
        except ValueError as exc:
            await refuse(interaction, str(exc))
            return
        log.info("guild %s: user %s allowed models %s", guild_id, interaction.user.id, words)
        await show_settings(interaction, "Saved.")

    @settings.command(name="seconds", description="The longest video /video may make here")
    @app_commands.describe(maximum="Longest video in seconds; leave empty to allow any length")
    async def settings_seconds(
        interaction: discord.Interaction,
        maximum: app_commands.Range[int, 1, MAX_SECONDS_CEILING] | None = None,
    ) -> None:
        guild_id = guild_of(interaction)
        shortest = min((int(s) for s in catalog.all_seconds()), default=1)
        if maximum is not None and maximum < shortest:
            await refuse(
                interaction,
                f"No model makes videos that short: the shortest is {shortest} seconds.",
            )
            return
        await admin_of(interaction).set_max_seconds(maximum)
        log.info("guild %s: user %s set max seconds %s", guild_id, interaction.user.id, maximum)
        await show_settings(interaction, "Saved.")

    @settings.command(name="channels", description="Channels where /video may be used here")
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
        interaction: discord.Interaction,
        action: str,
        channel: app_commands.Transform[app_commands.AppCommandChannel, AnyChannel] | None = None,
    ) -> None:
        guild_id = guild_of(interaction)
        current = await load_guild_settings(bot.store, guild_id)
        listed = list(current.channel_ids or ())
        if action == "clear":
            listed = []
        elif channel is None:
            await refuse(interaction, f"Choose the channel to {action}.")
            return
        elif action == "add":
            listed.append(channel.id)
        elif channel.id in listed:
            listed.remove(channel.id)
        else:
            await refuse(interaction, f"{channel.mention} is not on the list.")
            return
        await admin_of(interaction).set_channels(listed)
        log.info("guild %s: user %s set channels %s", guild_id, interaction.user.id, listed)
        headline = "Saved." if listed else "Saved: `/video` can be used in every channel."
        await show_settings(interaction, headline)

    @settings.command(name="limits", description="Each member's default limits in this server")
    @app_commands.describe(
        daily="24-hour budget per member in dollars, or `default`",
        monthly="Monthly budget per member in dollars, or `default`",
        active="Videos one member may have in progress at once",
        cooldown="Seconds between one member's requests (0: none)",
        reset="Go back to the bot's defaults for all four",
    )
    async def settings_limits(  # noqa: PLR0917 - Discord passes options as parameters
        interaction: discord.Interaction,
        daily: app_commands.Range[str, 1, 32] | None = None,
        monthly: app_commands.Range[str, 1, 32] | None = None,
        active: app_commands.Range[int, 1, 100] | None = None,
        cooldown: app_commands.Range[int, 0, 86_400] | None = None,
        reset: bool = False,
    ) -> None:
        guild_id = guild_of(interaction)
        if not reset and daily is None and monthly is None and active is None and cooldown is None:
            await show_settings(interaction, "Nothing changed: give a limit to set, or reset.")
            return
        try:
            # Every value is checked (input, then the owner's ceilings) before anything is
            # written, and all of them are written in one transaction with their audit entry.
            await admin_of(interaction).set_limits(
                daily=KEEP if daily is None else budget_value(daily),
                monthly=KEEP if monthly is None else budget_value(monthly),
                active=KEEP if active is None else active,
                cooldown=KEEP if cooldown is None else float(cooldown),
                reset=reset,
            )
        except ValueError as exc:
            await refuse(interaction, str(exc))
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
        await show_settings(interaction, "Saved.")

    @admin.command(name="audit", description="Who changed this server's video limits, and how")
    @app_commands.describe(page="Which page (newest first)")
    async def audit(
        interaction: discord.Interaction, page: app_commands.Range[int, 1, 10_000] = 1
    ) -> None:
        guild_id = guild_of(interaction)
        total = await bot.store.count_audit(guild_id)
        entries = await bot.store.audit_entries(guild_id, AUDIT_PAGE, (page - 1) * AUDIT_PAGE)
        await answer(interaction, audit_embed("Changes in this server", entries, page, total))

    guard(admin, require_manage_guild)
    return admin


def budget_value(text: str) -> int | None:
    """A budget option: dollars, or `default` (None) for the bot's setting."""
    return None if text.strip().lower() == "default" else parse_dollars(text)


# ---------------------------------------------------------------------- /video-owner


def build_owner_group(bot: VideoBot) -> app_commands.Group:
    owner = app_commands.Group(
        name="video-owner",
        description="For the bot's owners: the bot-wide spending cap",
        # Owners reach it from any server or a DM, whatever ALLOW_DMS says for members.
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True),
    )

    @owner.command(name="cap", description="The bot-wide daily spending cap: show or change it")
    @app_commands.describe(
        dollars="New cap per UTC day in dollars, e.g. 25 (0 pauses all generation)",
        reset="Go back to the cap in the bot's settings (QUOTA_BOT_DAILY_DOLLARS)",
    )
    async def cap(
        interaction: discord.Interaction,
        dollars: app_commands.Range[str, 1, 32] | None = None,
        reset: bool = False,
    ) -> None:
        headline: str | None = None
        try:
            if reset:
                await bot.quota.set_bot_daily_cap(None, by=interaction.user.id)
                headline = "Back to the cap in the bot's settings."
            elif dollars is not None:
                await bot.quota.set_bot_daily_cap(parse_dollars(dollars), by=interaction.user.id)
                headline = "Saved."
        except ValueError as exc:
            await refuse(interaction, str(exc))
            return
        if headline is not None:
            log.info(
                "owner %s set the bot-wide daily cap (dollars=%s, reset=%s)",
                interaction.user.id,
                dollars,
                reset,
            )
        status = await bot.quota.bot_status(bot.store.clock())
        embed = discord.Embed(
            title="Bot-wide daily spending cap", description=headline, colour=COLOUR
        )
        embed.add_field(name="Today (UTC)", value=window_text(status), inline=False)
        setting = bot.quota.defaults.bot_daily_micros
        embed.add_field(name="In the bot's settings", value=format_dollars(setting), inline=False)
        embed.set_footer(text="Every server's spending counts against it.")
        await answer(interaction, embed)

    @owner.command(name="audit", description="Changes to the bot-wide cap, newest first")
    @app_commands.describe(page="Which page (newest first)")
    async def owner_audit(
        interaction: discord.Interaction, page: app_commands.Range[int, 1, 10_000] = 1
    ) -> None:
        total = await bot.store.count_audit(None)
        entries = await bot.store.audit_entries(None, AUDIT_PAGE, (page - 1) * AUDIT_PAGE)
        await answer(interaction, audit_embed("Bot-wide changes", entries, page, total))

    guard(owner, owner_check(bot))
    return owner


async def setup(bot: VideoBot) -> None:
    bot.tree.add_command(build_admin_group(bot))
    bot.tree.add_command(build_owner_group(bot))


async def teardown(bot: VideoBot) -> None:
    bot.tree.remove_command("video-admin")
    bot.tree.remove_command("video-owner")
