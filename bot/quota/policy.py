"""The quota policy: which limits apply to one request, and what `/quota`, `/video-admin usage`
and the owners' cap show and change. Plain async Python over the Store.

Enforcement itself is the store's: `Store.reserve_job` checks every limit and holds the cost in
one SQLite transaction, so simultaneous requests can never overspend.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from bot.catalog import format_dollars
from bot.guildsettings import load_guild_settings
from bot.money import MAX_BUDGET_MICROS
from bot.notice import Notice, NoticeError, notice
from bot.quota.defaults import QuotaDefaults
from bot.quota.limits import BOT_CAP_META_KEY, BOT_DAILY, LABELS, USER_DAILY, USER_MONTHLY
from bot.quota.overrides import member_overrides
from bot.quota.report import GuildUsage, QuotaReport, WindowUsage
from bot.quota.wording import describe_refusal
from bot.settings import Settings
from bot.store import Job, NewJob, Refusal, SpendLimit, Store
from bot.store.audit import AuditDraft, AuditEntry, Change
from bot.store.quota import QuotaTerms, apply_exemptions, with_overrides
from bot.windows import DAY_SECONDS, month_start, next_month_start, utc_day_start

log = logging.getLogger(__name__)

# A request stops counting in the rolling window just after 24 hours (see _oldest_charge_ages_out).
AGE_OUT_EPSILON = 0.001


class Requester(Protocol):
    """Who asks (bot.submit.Origin fits)."""

    @property
    def user_id(self) -> int: ...

    @property
    def guild_id(self) -> int | None: ...

    @property
    def role_ids(self) -> Sequence[int]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaPlan:
    """Everything `Store.reserve_job` needs for one request, besides the job and its cost."""

    limits: tuple[SpendLimit, ...]
    max_active_per_user: int | None
    cooldown_seconds: float | None
    role_ids: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Asker:
    user_id: int
    guild_id: int | None
    role_ids: tuple[int, ...]


class QuotaPolicy:
    """Decides the limits of each request; `Store.reserve_job` enforces them atomically."""

    def __init__(self, store: Store, defaults: QuotaDefaults | None = None) -> None:
        self.store = store
        self.defaults = defaults or QuotaDefaults()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> QuotaPolicy:
        return cls(store, QuotaDefaults.from_settings(settings))

    # The bot-wide values (a guild may override the first two; see plan()).
    @property
    def max_active_per_user(self) -> int | None:
        return self.defaults.max_active_per_user

    @property
    def cooldown_seconds(self) -> float | None:
        return self.defaults.cooldown_seconds

    @property
    def max_concurrent(self) -> int | None:
        """The bot-wide concurrency cap: jobs over it wait in the local queue."""
        return self.defaults.max_concurrent

    # ------------------------------------------------------------ owners and the bot cap

    def is_owner(self, user_id: int) -> bool:
        return user_id in self.defaults.owner_ids

    async def bot_daily_cap(self) -> int:
        """The bot-wide daily cap in micro-dollars: the owners' value, else the setting."""
        raw = await self.store.get_meta(BOT_CAP_META_KEY)
        if raw:  # "" = unset (the store has no way to delete a meta key)
            try:
                value = int(raw)
            except ValueError:
                log.warning("ignoring malformed %s=%r", BOT_CAP_META_KEY, raw)
            else:
                if value >= 0:
                    return value
        return self.defaults.bot_daily_micros

    async def set_bot_daily_cap(self, micros: int | None, *, by: int) -> AuditEntry:
        """Owners only (the caller checks is_owner): `by` is the owner, for the audit, which
        gets the change in the same transaction. None = back to the setting's value."""
        if micros is not None and not 0 <= micros <= MAX_BUDGET_MICROS:
            raise NoticeError(
                notice(
                    "The cap must be between $0.00 and {most}.",
                    most=format_dollars(MAX_BUDGET_MICROS),
                )
            )
        change = Change(meta={BOT_CAP_META_KEY: "" if micros is None else str(micros)})
        draft = AuditDraft(guild_id=None, actor_id=by, actor_kind="owner", action="cap")
        return await self.store.audited_change(draft, change)

    async def bot_status(self, now: float) -> WindowUsage:
        """The bot-wide cap and today's spending, for the owners (and /quota)."""
        since = utc_day_start(now)
        return WindowUsage(
            name=BOT_DAILY,
            label=LABELS[BOT_DAILY],
            used_micros=await self.store.usage(since=since),
            max_micros=await self.bot_daily_cap(),
            resets_at=since + DAY_SECONDS,
        )

    # ------------------------------------------------------------ per request

    def _is_exempt(self, role_ids: Collection[int]) -> bool:
        return not self.defaults.exempt_role_ids.isdisjoint(role_ids)

    async def reserve(self, origin: Requester, new: NewJob, now: float) -> Job | Refusal:
        """Work out the request's limits, then check them and hold its price in one store
        transaction, so simultaneous requests can never overspend."""
        plan = await self.plan(origin, now)
        return await self.store.reserve_job(
            new, new.cost_micros, plan.limits, now=now, **self._terms(plan)
        )

    async def check(self, origin: Requester, new: NewJob, now: float) -> Refusal | None:
        """What `reserve` would refuse, without holding anything: a cheap answer before work
        that costs (downloading and decoding a reference image)."""
        plan = await self.plan(origin, now)
        return await self.store.check_job(
            new, new.cost_micros, plan.limits, now=now, **self._terms(plan)
        )

    def _terms(self, plan: QuotaPlan) -> QuotaTerms:
        """What the store checks besides `plan.limits`, within the owner's ceilings."""
        return QuotaTerms(
            max_active_per_user=plan.max_active_per_user,
            cooldown_seconds=plan.cooldown_seconds,
            role_ids=plan.role_ids,
            ceilings=self.defaults.ceilings,
        )

    async def plan(self, origin: Requester, now: float) -> QuotaPlan:
        """The limits of one request: pass them all to `Store.reserve_job`."""
        guild = await load_guild_settings(self.store, origin.guild_id)
        ceilings = self.defaults.ceilings
        role_ids = tuple(origin.role_ids)
        exempt = self._is_exempt(role_ids)
        limits: list[SpendLimit] = []
        if not exempt:
            # Most lasting first: the store reports the first limit that refuses.
            limits.append(
                SpendLimit(
                    USER_MONTHLY,
                    "user",
                    since=month_start(now),
                    max_micros=_within(
                        guild.user_monthly_micros,
                        self.defaults.user_monthly_micros,
                        ceilings.spend.get(USER_MONTHLY),
                    ),
                    resets_at=next_month_start(now),
                )
            )
            since = now - DAY_SECONDS
            # With nothing in the window yet, a refusal can only come from requests made at
            # the same moment (concurrently): they age out a day from now.
            ages_out = await self._oldest_charge_ages_out(origin.user_id, since)
            if ages_out is None:
                ages_out = now + DAY_SECONDS + AGE_OUT_EPSILON
            limits.append(
                SpendLimit(
                    USER_DAILY,
                    "user",
                    since=since,
                    max_micros=_within(
                        guild.user_daily_micros,
                        self.defaults.user_daily_micros,
                        ceilings.spend.get(USER_DAILY),
                    ),
                    resets_at=ages_out,
                )
            )
        day = utc_day_start(now)
        limits.append(
            SpendLimit(
                BOT_DAILY,
                "bot",
                since=day,
                max_micros=await self.bot_daily_cap(),
                resets_at=day + DAY_SECONDS,
            )
        )
        # A guild's values apply within the owner's ceilings, whenever they were stored.
        max_active = self.defaults.max_active_per_user
        if guild.max_active_per_user is not None:
            max_active = guild.max_active_per_user
            if ceilings.max_active is not None:
                max_active = min(max_active, ceilings.max_active)
        cooldown = self.defaults.cooldown_seconds
        if guild.cooldown_seconds is not None:
            cooldown = max(guild.cooldown_seconds, ceilings.min_cooldown or 0.0)
        return QuotaPlan(
            limits=tuple(limits),
            max_active_per_user=None if exempt else max_active,
            cooldown_seconds=None if exempt or not cooldown else cooldown,
            role_ids=role_ids,
        )

    async def limits(self, origin: Requester, now: float) -> tuple[SpendLimit, ...]:
        return (await self.plan(origin, now)).limits

    async def _oldest_charge_ages_out(self, user_id: int, since: float) -> float | None:
        """When the user's oldest request still counting in the rolling window leaves it.

        A job counts (held or spent) unless it failed, which refunded it in the same
        transaction; its charges are all dated at its creation (see store/ledger.py). The
        window includes its start, so a request stops counting just after 24 hours: reported
        a millisecond later, so that a retry at the time shown is admitted."""
        oldest = await self.store.oldest_charge_since(user_id, since)
        return None if oldest is None else oldest + DAY_SECONDS + AGE_OUT_EPSILON

    # ------------------------------------------------------------ telling the member

    def describe(self, refusal: Refusal) -> Notice:
        """One clear message: which limit, what is left, what this costs, when it resets."""
        return describe_refusal(refusal)

    async def usage_report(
        self,
        user_id: int,
        guild_id: int | None,
        role_ids: Collection[int] = (),
        now: float | None = None,
    ) -> QuotaReport:
        """`/quota`: the member's usage, limit and what is left per window, with reset times,
        after the guild's settings and the member's (and their roles') overrides, exactly as
        the next request would be checked."""
        now = self.store.clock() if now is None else now
        plan = await self.plan(_Asker(user_id, guild_id, tuple(role_ids)), now)
        ceilings = self.defaults.ceilings
        overrides = await member_overrides(self.store, user_id, guild_id, role_ids, ceilings)
        by_name = {limit.name: limit for limit in plan.limits}
        windows: list[WindowUsage] = []
        for name, since in ((USER_DAILY, now - DAY_SECONDS), (USER_MONTHLY, month_start(now))):
            rolling = name == USER_DAILY
            used = await self.store.usage(user_id=user_id, since=since)
            limit = by_name.get(name)
            applied = None if limit is None else with_overrides(limit, overrides)
            ceiling = None if applied is None else applied.max_micros  # None: exempt
            resets = (
                await self._oldest_charge_ages_out(user_id, since)
                if rolling
                else next_month_start(now)
            )
            windows.append(WindowUsage(name, LABELS[name], used, ceiling, resets, rolling))
        active = await self.store.count_active_jobs(user_id)
        max_active, cooldown = apply_exemptions(
            overrides, ceilings, plan.max_active_per_user, plan.cooldown_seconds
        )
        next_at: float | None = None
        if cooldown is not None:
            last = await self.store.last_request_at(user_id)
            if last is not None and last + cooldown > now:
                next_at = min(last + cooldown, now + cooldown)
        return QuotaReport(
            user_id=user_id,
            guild_id=guild_id,
            windows=tuple(windows),
            bot=await self.bot_status(now),
            active_jobs=active,
            max_active=max_active,
            cooldown_seconds=cooldown,
            next_request_at=next_at,
        )

    async def guild_usage(
        self, guild_id: int, now: float | None = None, top: int = 10
    ) -> GuildUsage:
        """`/video-admin usage`: spending in the guild today and this month, top members."""
        now = self.store.clock() if now is None else now
        month = month_start(now)
        return GuildUsage(
            guild_id=guild_id,
            today_micros=await self.store.usage(guild_id=guild_id, since=utc_day_start(now)),
            month_micros=await self.store.usage(guild_id=guild_id, since=month),
            top_month=tuple(await self.store.top_spenders(guild_id, month, top)),
        )


def _within(guild_value: int | None, default: int, ceiling: int | None) -> int:
    """A guild's budget as it applies: capped at the owner's ceiling (the bot's own default is
    the owner's, never capped)."""
    if guild_value is None:
        return default
    return guild_value if ceiling is None else min(guild_value, ceiling)
