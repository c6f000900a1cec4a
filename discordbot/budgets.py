"""Budgets and spending as members and admins read them: each window's use, ceiling, what is
left and when it comes back, and the one-line answer to "can I make a video now?". Shared by
`/quota` and `/video-admin`; the numbers come from the core (`QuotaPolicy.usage_report`); the
words are in the reader's language (`locale`)."""

from __future__ import annotations

import discord

from bot.catalog import format_dollars
from bot.notice import When
from bot.quota import QuotaReport, WindowUsage
from discordbot.i18n import Locale, t, text

COLOUR = discord.Colour.blurple()


def capitalised(label: str) -> str:
    return label[:1].upper() + label[1:]


def window_text(window: WindowUsage, locale: Locale = None) -> str:
    """One spending window: used, ceiling, what is left, when it comes back."""
    used = format_dollars(window.used_micros)
    left = window.left_micros
    if window.max_micros is None or left is None:
        return t(locale, "{used} used · no limit for you here", used=used)
    usage = t(
        locale,
        "{used} of {most} used · **{left} left**",
        used=used,
        most=format_dollars(window.max_micros),
        left=format_dollars(left),
    )
    if window.rolling:
        if window.resets_at is None:
            return usage + "\n" + t(locale, "Each request counts for 24 hours after it is made.")
        return (
            usage
            + "\n"
            + t(
                locale,
                "Budget comes back as requests age out of the last 24 hours; the next {when}.",
                when=When(window.resets_at),
            )
        )
    if window.resets_at is not None:
        return usage + "\n" + t(locale, "Resets {when}.", when=When(window.resets_at))
    return usage


def report_summary(report: QuotaReport, locale: Locale = None, *, you: bool = True) -> str:
    """The one-line answer to "can I make a video now?"."""
    lines: list[str] = []
    left = report.left_micros
    if left > 0:
        lines.append(
            t(
                locale,
                "A video costing up to **{left}** can be started now.",
                left=format_dollars(left),
            )
        )
    else:
        lines.append(
            t(locale, "Nothing is left to spend right now; see below for when budget comes back.")
        )
    if report.max_active is not None and report.active_jobs >= report.max_active:
        if you:
            lines.append(
                t(
                    locale,
                    "You have {active} of {most} videos in progress, the most allowed at once.",
                    active=report.active_jobs,
                    most=report.max_active,
                )
            )
        else:
            lines.append(
                t(
                    locale,
                    "They have {active} of {most} videos in progress, the most allowed at once.",
                    active=report.active_jobs,
                    most=report.max_active,
                )
            )
    if report.next_request_at is not None:
        lines.append(
            t(
                locale,
                "The next request can be made {when}.",
                when=When(report.next_request_at),
            )
        )
    return "\n".join(lines)


def add_report_fields(embed: discord.Embed, report: QuotaReport, locale: Locale = None) -> None:
    for window in report.windows:
        embed.add_field(
            name=capitalised(text(locale, window.label)),
            value=window_text(window, locale),
            inline=False,
        )
    embed.add_field(
        name=t(locale, "Bot-wide daily cap (shared by everyone)"),
        value=window_text(report.bot, locale),
        inline=False,
    )
    if report.max_active is None:
        active = t(locale, "{active} · no limit here", active=report.active_jobs)
    else:
        active = t(locale, "{active} of {most}", active=report.active_jobs, most=report.max_active)
    embed.add_field(name=t(locale, "Videos in progress"), value=active)
    if report.cooldown_seconds is None:
        cooldown = t(locale, "None")
    else:
        cooldown = t(locale, "{seconds} s between requests", seconds=f"{report.cooldown_seconds:g}")
    embed.add_field(name=t(locale, "Cooldown"), value=cooldown)
