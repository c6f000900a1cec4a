"""Quota policy: which limits apply to a request, how a refusal is explained, what `/quota` and
`/video-admin` show and change. Plain async Python over the Store; no Discord imports.

The numbers come from settings (`QUOTA_*`), each per-user one overridable per guild by its
admins (guild settings), and per member or role through the store's quota overrides (a member
gets the most generous of their roles; `exempt` skips a limit). The bot-wide daily cap is the
owners' (`OWNER_IDS`): kept in the store's meta table so it can change at run time, and never
overridable by a guild. Enforcement itself is the store's: `Store.reserve_job` checks every
limit and holds the cost in one SQLite transaction.

Windows (all UTC): a user's rolling 24 hours (budget comes back as each request ages out), a
user's calendar month, and the bot's calendar day. A user's budgets count their spending in
every guild together, so joining more guilds does not multiply it. Times shown to users use
Discord's timestamp markup (`<t:UNIX:R>`), which each reader sees in their own time zone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, Protocol, TypeVar

from pydantic import JsonValue, TypeAdapter, ValidationError

from bot.catalog import MICROS_PER_DOLLAR, format_dollars
from bot.settings import Settings
from bot.store import Job, NewJob, QuotaOverride, Refusal, SpendLimit, Store, TargetKind
from bot.store.audit import AuditDraft, AuditEntry, Change
from bot.store.quota import (
    ACTIVE_JOBS_LIMIT,
    COOLDOWN_LIMIT,
    Ceilings,
    Overrides,
    apply_exemptions,
    with_overrides,
)

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0

# Limit names: what overrides are keyed by and refusals report.
USER_DAILY: Final = "daily"
USER_MONTHLY: Final = "monthly"
BOT_DAILY: Final = "bot_daily"
__all__ = [
    "ACTIVE_JOBS_LIMIT",
    "BOT_DAILY",
    "COOLDOWN_LIMIT",
    "OVERRIDABLE_LIMITS",
    "USER_DAILY",
    "USER_MONTHLY",
    "GuildSettings",
    "GuildUsage",
    "QuotaDefaults",
    "QuotaPlan",
    "QuotaPolicy",
    "QuotaReport",
    "Requester",
    "WindowUsage",
    "check_request",
    "discord_time",
    "dollars_to_micros",
    "load_guild_settings",
    "month_start",
    "next_month_start",
    "parse_dollars",
    "quota_overrides_for",
    "utc_day_start",
]

BudgetName = Literal["daily", "monthly"]

# What a member or role can be given in a guild (`/video-admin quota set`), with labels.
OVERRIDABLE_LIMITS: dict[str, str] = {
    USER_DAILY: "24-hour budget",
    USER_MONTHLY: "monthly budget",
    ACTIVE_JOBS_LIMIT: "videos in progress at once",
    COOLDOWN_LIMIT: "cooldown between requests",
}
_LABELS: dict[str, str] = {**OVERRIDABLE_LIMITS, BOT_DAILY: "bot-wide daily spending cap"}

BOT_CAP_META_KEY = "quota.bot_daily_cap_micros"

# Guild settings keys (the store's per-guild JSON key/value table).
KEY_ALLOWED_MODELS = "video.allowed_models"
KEY_MAX_SECONDS = "video.max_seconds"
KEY_CHANNEL_IDS = "video.channel_ids"
KEY_USER_DAILY = "quota.daily_micros"
KEY_USER_MONTHLY = "quota.monthly_micros"
KEY_MAX_ACTIVE = "quota.max_active_per_user"
KEY_COOLDOWN = "quota.cooldown_seconds"
_BUDGET_KEYS: dict[BudgetName, str] = {USER_DAILY: KEY_USER_DAILY, USER_MONTHLY: KEY_USER_MONTHLY}

MAX_BUDGET_MICROS = 1_000_000 * MICROS_PER_DOLLAR  # a million dollars: past any sane budget
MAX_COOLDOWN_SECONDS = DAY_SECONDS
MAX_ACTIVE_CEILING = 100
_AGE_OUT_EPSILON = 0.001


# ---------------------------------------------------------------------- money and time


def dollars_to_micros(amount: Decimal) -> int:
    """Exact for amounts with at most six decimal places (settings guarantee that)."""
    return int(amount * MICROS_PER_DOLLAR)


def parse_dollars(text: str) -> int:
    """`5`, `5.00`, `$5.5` -> micro-dollars; ValueError with a user-facing message otherwise."""
    cleaned = text.strip().removeprefix("$").strip().replace(",", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"`{text}` is not a dollar amount; write it like `5` or `2.50`.") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"`{text}` is not a dollar amount of zero or more.")
    micros = amount * MICROS_PER_DOLLAR
    if micros != micros.to_integral_value():
        raise ValueError(f"`{text}` has more than six decimal places.")
    if micros > MAX_BUDGET_MICROS:
        raise ValueError(f"`{text}` is more than {format_dollars(MAX_BUDGET_MICROS)}.")
    return int(micros)


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def utc_day_start(now: float) -> float:
    return _utc(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def month_start(now: float) -> float:
    """The first instant of `now`'s calendar month, UTC."""
    return _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_month_start(now: float) -> float:
    first = _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if first.month == 12:
        return first.replace(year=first.year + 1, month=1).timestamp()
    return first.replace(month=first.month + 1).timestamp()


def discord_time(at: float, style: Literal["R", "f", "t", "D"] = "R") -> str:
    """Discord timestamp markup; rounded up so "in 0 seconds" never shows while still waiting."""
    return f"<t:{math.ceil(at)}:{style}>"


# ---------------------------------------------------------------------- guild settings


@dataclasses.dataclass(frozen=True, slots=True)
class GuildSettings:
    """What a guild's admins set with `/video-admin settings` and `quota`; None = the default
    (every model, the catalog's durations, every channel, the bot's quota settings)."""

    allowed_models: tuple[str, ...] | None = None
    max_seconds: int | None = None
    channel_ids: tuple[int, ...] | None = None
    user_daily_micros: int | None = None
    user_monthly_micros: int | None = None
    max_active_per_user: int | None = None
    cooldown_seconds: float | None = None

    def allows_model(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def allows_seconds(self, seconds: str | int) -> bool:
        return self.max_seconds is None or int(seconds) <= self.max_seconds

    def allows_channel(self, channel_id: int, parent_id: int | None = None) -> bool:
        """A thread is allowed when its parent channel is."""
        if self.channel_ids is None:
            return True
        return channel_id in self.channel_ids or (
            parent_id is not None and parent_id in self.channel_ids
        )


_T = TypeVar("_T")
_MODELS = TypeAdapter(tuple[str, ...])
_IDS = TypeAdapter(tuple[int, ...])
_INT = TypeAdapter(int)
_FLOAT = TypeAdapter(float)


def _read(values: dict[str, JsonValue], key: str, adapter: TypeAdapter[_T]) -> _T | None:
    raw = values.get(key)
    if raw is None:
        return None
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        # A hand-edited or stale row must not stop /video; the default applies instead.
        log.warning("ignoring malformed guild setting %s=%r", key, raw)
        return None


def _count(values: dict[str, JsonValue], key: str) -> int | None:
    value = _read(values, key, _INT)
    return None if value is None or value < 0 else value


def _seconds(values: dict[str, JsonValue], key: str) -> float | None:
    value = _read(values, key, _FLOAT)
    return None if value is None or not 0 <= value <= MAX_COOLDOWN_SECONDS else value


async def load_guild_settings(store: Store, guild_id: int | None) -> GuildSettings:
    """The guild's settings (one read); a DM has only defaults."""
    if guild_id is None:
        return GuildSettings()
    values = await store.all_guild_settings(guild_id)
    return GuildSettings(
        allowed_models=_read(values, KEY_ALLOWED_MODELS, _MODELS),
        max_seconds=_count(values, KEY_MAX_SECONDS),
        channel_ids=_read(values, KEY_CHANNEL_IDS, _IDS),
        user_daily_micros=_count(values, KEY_USER_DAILY),
        user_monthly_micros=_count(values, KEY_USER_MONTHLY),
        max_active_per_user=_count(values, KEY_MAX_ACTIVE),
        cooldown_seconds=_seconds(values, KEY_COOLDOWN),
    )


def check_request(
    settings: GuildSettings,
    model: str,
    seconds: str | int,
    channel_id: int,
    parent_channel_id: int | None = None,
) -> str | None:
    """Why the guild's settings refuse this request (user-facing), or None if they allow it."""
    if not settings.allows_channel(channel_id, parent_channel_id):
        assert settings.channel_ids is not None
        where = ", ".join(f"<#{c}>" for c in settings.channel_ids)
        return f"`/video` can't be used in this channel here. Use it in: {where}."
    if not settings.allows_model(model):
        assert settings.allowed_models is not None
        allowed = ", ".join(f"`{m}`" for m in settings.allowed_models)
        return f"Model `{model}` isn't allowed in this server. Allowed: {allowed}."
    if not settings.allows_seconds(seconds):
        return (
            f"This server allows videos of at most {settings.max_seconds} seconds; "
            f"you asked for {int(seconds)}."
        )
    return None


# ---------------------------------------------------------------------- member and role quotas


async def quota_overrides_for(
    store: Store, guild_id: int, target_kind: TargetKind, target_id: int
) -> list[QuotaOverride]:
    """`/video-admin quota show`: the overrides a member or role has in the guild."""
    return [
        o
        for o in await store.list_quota_overrides(guild_id)
        if o.target_kind == target_kind and o.target_id == target_id
    ]


# ---------------------------------------------------------------------- the policy


class Requester(Protocol):
    """Who asks (bot.submit.Origin fits once it carries `role_ids`)."""

    @property
    def user_id(self) -> int: ...

    @property
    def guild_id(self) -> int | None: ...

    @property
    def role_ids(self) -> Sequence[int]: ...


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


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaPlan:
    """Everything `Store.reserve_job` needs for one request, besides the job and its cost."""

    limits: tuple[SpendLimit, ...]
    max_active_per_user: int | None
    cooldown_seconds: float | None
    role_ids: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class WindowUsage:
    """One spending window as `/quota` shows it."""

    name: str
    label: str
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
            raise ValueError(
                f"The cap must be between $0.00 and {format_dollars(MAX_BUDGET_MICROS)}."
            )
        change = Change(meta={BOT_CAP_META_KEY: "" if micros is None else str(micros)})
        draft = AuditDraft(guild_id=None, actor_id=by, actor_kind="owner", action="cap")
        return await self.store.audited_change(draft, change)

    async def bot_status(self, now: float) -> WindowUsage:
        """The bot-wide cap and today's spending, for the owners (and /quota)."""
        since = utc_day_start(now)
        return WindowUsage(
            name=BOT_DAILY,
            label=_LABELS[BOT_DAILY],
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
            new,
            new.cost_micros,
            plan.limits,
            max_active_per_user=plan.max_active_per_user,
            cooldown_seconds=plan.cooldown_seconds,
            role_ids=plan.role_ids,
            ceilings=self.defaults.ceilings,
            now=now,
        )

    async def check(self, origin: Requester, new: NewJob, now: float) -> Refusal | None:
        """What `reserve` would refuse, without holding anything: a cheap answer before work
        that costs (downloading and decoding a reference image)."""
        plan = await self.plan(origin, now)
        return await self.store.check_job(
            new,
            new.cost_micros,
            plan.limits,
            max_active_per_user=plan.max_active_per_user,
            cooldown_seconds=plan.cooldown_seconds,
            role_ids=plan.role_ids,
            ceilings=self.defaults.ceilings,
            now=now,
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
                ages_out = now + DAY_SECONDS + _AGE_OUT_EPSILON
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
        oldest: float | None = None
        offset, page = 0, 50
        while True:
            batch = await self.store.recent_jobs(user_id, page, offset)
            for job in batch:  # newest first
                if job.created_at < since:
                    return None if oldest is None else oldest + DAY_SECONDS + _AGE_OUT_EPSILON
                if job.state != "failed" and job.cost_micros > 0:
                    oldest = job.created_at
            if len(batch) < page:
                return None if oldest is None else oldest + DAY_SECONDS + _AGE_OUT_EPSILON
            offset += page

    # ------------------------------------------------------------ telling the user

    def describe(self, refusal: Refusal) -> str:
        """One clear message: which limit, what is left, what this costs, when it resets."""
        if refusal.kind == "active":
            return (
                f"You already have {refusal.active_jobs} of {refusal.max_active} videos in "
                "progress, the most allowed at once. Try again when one of them finishes."
            )
        if refusal.kind == "cooldown":
            when = (
                f" You can ask again {discord_time(refusal.resets_at)}."
                if refusal.resets_at is not None
                else ""
            )
            wait = math.ceil(refusal.retry_after)
            return (
                f"Please wait {wait} more second{'s' if wait != 1 else ''} between requests.{when}"
            )
        return _describe_spend(refusal)

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
        overrides = await self._overrides(user_id, guild_id, role_ids)
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
            windows.append(WindowUsage(name, _LABELS[name], used, ceiling, resets, rolling))
        active = sum(1 for j in await self.store.active_jobs() if j.user_id == user_id)
        max_active, cooldown = apply_exemptions(
            overrides, self.defaults.ceilings, plan.max_active_per_user, plan.cooldown_seconds
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

    async def _overrides(
        self, user_id: int, guild_id: int | None, role_ids: Collection[int]
    ) -> Overrides:
        # The same selection the store makes inside reserve_job (store/quota.load_overrides).
        if guild_id is None:
            return Overrides((), user_id, self.defaults.ceilings)
        roles = set(role_ids)
        found = [
            o
            for o in await self.store.list_quota_overrides(guild_id)
            if (o.target_kind == "user" and o.target_id == user_id)
            or (o.target_kind == "role" and o.target_id in roles)
        ]
        return Overrides(found, user_id, self.defaults.ceilings)

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


def _pick(override: _T | None, default: _T) -> _T:
    return default if override is None else override


def _within(guild_value: int | None, default: int, ceiling: int | None) -> int:
    """A guild's budget as it applies: capped at the owner's ceiling (the bot's own default is
    the owner's, never capped)."""
    if guild_value is None:
        return default
    return guild_value if ceiling is None else min(guild_value, ceiling)


def _describe_spend(refusal: Refusal) -> str:
    name = refusal.limit_name
    label = _LABELS.get(name, f"'{name}' limit")
    cap = format_dollars(refusal.max_micros)
    cost = format_dollars(refusal.cost_micros)
    left = format_dollars(max(0, refusal.max_micros - refusal.used_micros))
    bot = name == BOT_DAILY
    whose = "The" if bot else "Your"
    if refusal.max_micros == 0:
        if bot:
            return f"Video generation is paused: the {label} is {cap}. Try again later."
        return f"Video requests are switched off for you here: your {label} is {cap}."
    if refusal.cost_micros > refusal.max_micros:
        return (
            f"This video costs {cost}, more than {whose.lower()} whole {label} of {cap}. "
            "Try a shorter or smaller video."
        )
    text = f"{whose} {label} is used up: {left} of {cap} left, and this video costs {cost}."
    if refusal.resets_at is None:
        return text
    when = discord_time(refusal.resets_at)
    if name == USER_DAILY:
        return f"{text} Budget comes back as your requests age out of it; the next {when}."
    return f"{text} It resets {when}."
