"""How the quota speaks to a member: a refusal (which limit, what is left, what this costs, when
it comes back) and a member's or role's overrides, as notices the front end renders."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.catalog import format_dollars
from bot.notice import Notice, When, lines, notice
from bot.quota.limits import BOT_DAILY, USER_DAILY, label
from bot.quota.overrides import StoredOverride
from bot.store import Refusal


def describe_refusal(refusal: Refusal) -> Notice:
    """One clear message: which limit, what is left, what this costs, when it resets."""
    if refusal.kind == "active":
        return notice(
            "You already have {active} of {most} videos in progress, the most allowed at once. "
            "Try again when one of them finishes.",
            active=refusal.active_jobs,
            most=refusal.max_active or 0,
        )
    if refusal.kind == "cooldown":
        wait = math.ceil(refusal.retry_after)
        text = (
            notice("Please wait 1 more second between requests.")
            if wait == 1
            else notice("Please wait {seconds} more seconds between requests.", seconds=wait)
        )
        if refusal.resets_at is None:
            return text
        return text + notice("You can ask again {when}.", when=When(refusal.resets_at))
    return _describe_spend(refusal)


def _describe_spend(refusal: Refusal) -> Notice:
    name = refusal.limit_name
    what = label(name)
    cap = format_dollars(refusal.max_micros)
    cost = format_dollars(refusal.cost_micros)
    left = format_dollars(max(0, refusal.max_micros - refusal.used_micros))
    bot = name == BOT_DAILY
    if refusal.max_micros == 0:
        if bot:
            return notice(
                "Video generation is paused: the {limit} is {cap}. Try again later.",
                limit=what,
                cap=cap,
            )
        return notice(
            "Video requests are switched off for you here: your {limit} is {cap}.",
            limit=what,
            cap=cap,
        )
    if refusal.cost_micros > refusal.max_micros:
        if bot:
            return notice(
                "This video costs {cost}, more than the whole {limit} of {cap}. "
                "Try a shorter or smaller video.",
                cost=cost,
                limit=what,
                cap=cap,
            )
        return notice(
            "This video costs {cost}, more than your whole {limit} of {cap}. "
            "Try a shorter or smaller video.",
            cost=cost,
            limit=what,
            cap=cap,
        )
    used_up = (
        notice(
            "The {limit} is used up: {left} of {cap} left, and this video costs {cost}.",
            limit=what,
            left=left,
            cap=cap,
            cost=cost,
        )
        if bot
        else notice(
            "Your {limit} is used up: {left} of {cap} left, and this video costs {cost}.",
            limit=what,
            left=left,
            cap=cap,
            cost=cost,
        )
    )
    if refusal.resets_at is None:
        return used_up
    when = When(refusal.resets_at)
    if name == USER_DAILY:
        return used_up + notice(
            "Budget comes back as your requests age out of it; the next {when}.", when=when
        )
    return used_up + notice("It resets {when}.", when=when)


def describe_overrides(shown: Sequence[StoredOverride]) -> Notice:
    """`/video-admin quota show`: one line per override, with what it counts as."""
    out: list[Notice] = []
    for item in shown:
        o = item.override
        value: Notice | str
        if o.exempt:
            value = notice("exempt")
            if o.max_micros is not None:
                value = notice(
                    "exempt ({budget} applies if the exemption is lifted)",
                    budget=format_dollars(o.max_micros),
                )
            if not item.exemption_allowed:
                value = notice(
                    "{value} — not allowed by the bot's owner: counts as the most admins may give",
                    value=value,
                )
        elif o.max_micros is not None:
            value = format_dollars(o.max_micros)
            if item.capped_at is not None:
                value = notice(
                    "{budget} — counts as {ceiling}, the bot owner's ceiling",
                    budget=format_dollars(o.max_micros),
                    ceiling=format_dollars(item.capped_at),
                )
        else:
            value = notice("default")
        out.append(notice("• {limit}: {value}", limit=item.label, value=value))
    return lines(out) if out else notice("None: this server's defaults apply.")
