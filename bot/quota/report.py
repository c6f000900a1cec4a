"""What `/quota` and `/video-admin usage` show: spending per window, limits, what is left."""

from __future__ import annotations

import dataclasses

from bot.notice import Notice


@dataclasses.dataclass(frozen=True, slots=True)
class WindowUsage:
    """One spending window as `/quota` shows it."""

    name: str
    label: Notice
    used_micros: int
    # None: exempt (no ceiling for this member here).
    max_micros: int | None
    # Calendar windows: when usage starts again from zero. Rolling: when the oldest request
    # still in the window ages out (budget comes back request by request); None if none is.
    resets_at: float | None
    rolling: bool = False

    @property
    def exempt(self) -> bool:
        return self.max_micros is None

    @property
    def left_micros(self) -> int | None:
        return None if self.max_micros is None else max(0, self.max_micros - self.used_micros)


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaReport:
    """`/quota` for one member in one guild (or DM)."""

    user_id: int
    guild_id: int | None
    windows: tuple[WindowUsage, ...]  # the member's own: 24 hours, then month
    bot: WindowUsage  # the bot-wide cap, shared by everyone
    active_jobs: int
    max_active: int | None  # None: exempt
    cooldown_seconds: float | None  # None: none or exempt
    next_request_at: float | None  # when the cooldown ends; None when a request may be made

    @property
    def left_micros(self) -> int:
        """The most one request could cost right now (the tightest window)."""
        lefts = [w.left_micros for w in (*self.windows, self.bot) if w.left_micros is not None]
        return min(lefts)


@dataclasses.dataclass(frozen=True, slots=True)
class GuildUsage:
    """`/video-admin usage`: the guild's spending (held + spent) today and this month (UTC)."""

    guild_id: int
    today_micros: int
    month_micros: int
    top_month: tuple[tuple[int, int], ...]  # (user_id, micros), biggest first
