"""The bot's own quota values and the owner's ceilings on what a guild's admins may give, from
the settings (`QUOTA_*`, `ADMIN_*`, `OWNER_IDS`), in the ledger's units."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from bot.catalog import MICROS_PER_DOLLAR
from bot.money import dollars_to_micros
from bot.quota.limits import USER_DAILY, USER_MONTHLY
from bot.settings import Settings
from bot.store.quota import Ceilings

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaDefaults:
    """The bot's settings, in the ledger's units."""

    user_daily_micros: int = 2 * MICROS_PER_DOLLAR
    user_monthly_micros: int = 20 * MICROS_PER_DOLLAR
    bot_daily_micros: int = 25 * MICROS_PER_DOLLAR
    max_active_per_user: int | None = 2
    cooldown_seconds: float | None = 30.0
    max_concurrent: int | None = 4
    exempt_role_ids: frozenset[int] = frozenset()
    owner_ids: frozenset[int] = frozenset()
    # The owner's ceilings on what a guild's admins may give; None: the matching value above.
    admin_user_daily_micros: int | None = None
    admin_user_monthly_micros: int | None = None
    admin_max_active_per_user: int | None = None
    admin_min_cooldown_seconds: float | None = None
    admin_may_exempt: bool = False

    @property
    def ceilings(self) -> Ceilings:
        """The ceilings as they apply: by default the bot's own values, so that admins can
        lower limits but raising any is the owner's decision (see bot/ceilings.py)."""
        return Ceilings(
            spend={
                USER_DAILY: _pick(self.admin_user_daily_micros, self.user_daily_micros),
                USER_MONTHLY: _pick(self.admin_user_monthly_micros, self.user_monthly_micros),
            },
            max_active=_pick(self.admin_max_active_per_user, self.max_active_per_user),
            min_cooldown=_pick(self.admin_min_cooldown_seconds, self.cooldown_seconds),
            may_exempt=self.admin_may_exempt,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> QuotaDefaults:
        admin_daily = settings.admin_max_user_daily_dollars
        admin_monthly = settings.admin_max_user_monthly_dollars
        return cls(
            user_daily_micros=dollars_to_micros(settings.quota_user_daily_dollars),
            user_monthly_micros=dollars_to_micros(settings.quota_user_monthly_dollars),
            bot_daily_micros=dollars_to_micros(settings.quota_bot_daily_dollars),
            max_active_per_user=settings.quota_max_active_per_user,
            cooldown_seconds=settings.quota_cooldown_seconds or None,
            max_concurrent=settings.quota_max_concurrent_jobs,
            exempt_role_ids=frozenset(settings.quota_exempt_role_ids),
            owner_ids=frozenset(settings.owner_ids),
            admin_user_daily_micros=None if admin_daily is None else dollars_to_micros(admin_daily),
            admin_user_monthly_micros=(
                None if admin_monthly is None else dollars_to_micros(admin_monthly)
            ),
            admin_max_active_per_user=settings.admin_max_active_per_user,
            admin_min_cooldown_seconds=settings.admin_min_cooldown_seconds,
            admin_may_exempt=settings.admin_may_exempt,
        )


def _pick(override: _T | None, default: _T) -> _T:
    return default if override is None else override
