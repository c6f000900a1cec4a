"""The named limits: what overrides are keyed by, what refusals report, and their labels."""

from __future__ import annotations

from typing import Final, Literal

from bot.notice import Notice, notice

# The store knows these two by name: it applies their exemptions inside check-and-reserve.
from bot.store.quota import ACTIVE_JOBS_LIMIT, COOLDOWN_LIMIT

__all__ = [
    "ACTIVE_JOBS_LIMIT",
    "BOT_CAP_META_KEY",
    "BOT_DAILY",
    "COOLDOWN_LIMIT",
    "LABELS",
    "OVERRIDABLE_LIMITS",
    "USER_DAILY",
    "USER_MONTHLY",
    "BudgetName",
    "label",
]

USER_DAILY: Final = "daily"
USER_MONTHLY: Final = "monthly"
BOT_DAILY: Final = "bot_daily"

BudgetName = Literal["daily", "monthly"]

# What a member or role can be given in a guild (`/video-admin quota set`), with labels.
OVERRIDABLE_LIMITS: dict[str, Notice] = {
    USER_DAILY: notice("24-hour budget"),
    USER_MONTHLY: notice("monthly budget"),
    ACTIVE_JOBS_LIMIT: notice("videos in progress at once"),
    COOLDOWN_LIMIT: notice("cooldown between requests"),
}
LABELS: dict[str, Notice] = {
    **OVERRIDABLE_LIMITS,
    BOT_DAILY: notice("bot-wide daily spending cap"),
}

# The owners' bot-wide daily cap, kept in the store's meta table so it can change at run time.
BOT_CAP_META_KEY = "quota.bot_daily_cap_micros"


def label(name: str) -> Notice:
    """A limit's name as members read it."""
    return LABELS.get(name) or notice("'{name}' limit", name=name)
