"""The owner's ceilings on what a guild's admins may give, and how a change past one is refused.

Discord applications are public unless the owner says otherwise, so a server's admins are not
trusted with the owner's money: they may lower any limit, but raise a budget (a member's, a
role's or the server's), the videos one member may have in progress or shorten the cooldown only
as far as the owner's settings allow (`ADMIN_MAX_*`, `ADMIN_MIN_COOLDOWN_SECONDS`), and exempt
someone from the limits only if `ADMIN_MAY_EXEMPT` is set. Unset, each ceiling is the bot's own
value (`QUOTA_*`): the owner chose those as what one member may cost, so going past them is the
owner's decision, never a server's. The ceilings bind owners using `/video-admin` too: what is
stored above a ceiling would count as the ceiling anyway (bot.quota), so allowing it would only
show a value that does not apply; an owner raises the setting instead.

A refusal names the ceiling and its setting. The changes themselves, each audited with its
refused attempts, are bot/guildadmin.py's.
"""

from __future__ import annotations

from bot.catalog import format_dollars
from bot.notice import Code, Notice, NoticeError, notice
from bot.quota.limits import (
    ACTIVE_JOBS_LIMIT,
    COOLDOWN_LIMIT,
    OVERRIDABLE_LIMITS,
    USER_DAILY,
    USER_MONTHLY,
)
from bot.store.quota import Ceilings

# The setting behind each ceiling, named in refusals.
CEILING_SETTINGS: dict[str, str] = {
    USER_DAILY: "ADMIN_MAX_USER_DAILY_DOLLARS",
    USER_MONTHLY: "ADMIN_MAX_USER_MONTHLY_DOLLARS",
    ACTIVE_JOBS_LIMIT: "ADMIN_MAX_ACTIVE_PER_USER",
    COOLDOWN_LIMIT: "ADMIN_MIN_COOLDOWN_SECONDS",
}
EXEMPT_SETTING = "ADMIN_MAY_EXEMPT"


class OverCeiling(NoticeError):
    """A change past the owner's ceiling; its notice names the ceiling and setting. The attempt
    has been audited by the time it is raised."""


def budget_refusal(ceilings: Ceilings, name: str, micros: int | None) -> Notice | None:
    """Why an admin may not give this budget (None: they may)."""
    ceiling = ceilings.spend.get(name)
    if micros is None or ceiling is None or micros <= ceiling:
        return None
    label = OVERRIDABLE_LIMITS[name]
    return notice(
        "{amount} is more than the bot's owner lets server admins give as a {limit}: "
        "at most {ceiling} ({setting}).",
        amount=format_dollars(micros),
        limit=label,
        ceiling=format_dollars(ceiling),
        setting=Code(CEILING_SETTINGS[name]),
    )


def active_refusal(ceilings: Ceilings, count: int | None) -> Notice | None:
    if count is None or ceilings.max_active is None or count <= ceilings.max_active:
        return None
    return notice(
        "{count} videos in progress at once is more than the bot's owner lets server admins "
        "allow: at most {most} ({setting}).",
        count=count,
        most=ceilings.max_active,
        setting=Code(CEILING_SETTINGS[ACTIVE_JOBS_LIMIT]),
    )


def cooldown_refusal(ceilings: Ceilings, seconds: float | None) -> Notice | None:
    floor = ceilings.min_cooldown
    if seconds is None or floor is None or seconds >= floor:
        return None
    return notice(
        "A cooldown of {seconds} seconds is shorter than the bot's owner lets server admins "
        "set: at least {least} seconds ({setting}).",
        seconds=f"{seconds:g}",
        least=f"{floor:g}",
        setting=Code(CEILING_SETTINGS[COOLDOWN_LIMIT]),
    )


def exempt_refusal(ceilings: Ceilings) -> Notice | None:
    if ceilings.may_exempt:
        return None
    return notice(
        "The bot's owner does not let server admins exempt members or roles from the limits "
        "({setting}). You can give a budget up to the owner's ceilings instead.",
        setting=Code(EXEMPT_SETTING),
    )
