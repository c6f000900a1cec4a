"""The quota policy over a real store, on SQLite and on PostgreSQL: windows, caps, overrides,
refusals and reports."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.audittext import change_lines
from bot.ceilings import OverCeiling
from bot.guildadmin import EVERY_LIMIT, Actor, GuildAdmin
from bot.guildsettings import (
    KEY_CHANNEL_IDS,
    KEY_MAX_ACTIVE,
    KEY_USER_DAILY,
    GuildSettings,
    check_request,
    load_guild_settings,
)
from bot.money import parse_budget, parse_dollars
from bot.notice import ChannelRef, Code, Notice, NoticeError, When
from bot.quota import QuotaDefaults, QuotaPlan, QuotaPolicy
from bot.quota.limits import (
    ACTIVE_JOBS_LIMIT,
    BOT_DAILY,
    COOLDOWN_LIMIT,
    USER_DAILY,
    USER_MONTHLY,
)
from bot.quota.overrides import quota_overrides_for, stored_overrides
from bot.quota.wording import describe_overrides
from bot.settings import load_settings
from bot.store import Job, NewJob, QuotaOverride, Refusal, Store
from bot.store.db import IntegrityErrors, execute
from bot.store.quota import NO_CEILINGS, Ceilings
from bot.windows import DAY_SECONDS, month_start, next_month_start, utc_day_start
from discordbot.markup import markup
from tests.clock import Clock

COST = 400_000  # $0.40
# Midday on the last day of January, UTC: the month ends in 12 hours.
T0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC).timestamp()
FEB_1 = datetime(2025, 2, 1, tzinfo=UTC).timestamp()
GUILD = 100
OTHER_GUILD = 200


@dataclasses.dataclass(frozen=True)
class Asker:
    """What bot.submit.Origin carries that the policy reads."""

    user_id: int = 1
    guild_id: int | None = GUILD
    role_ids: tuple[int, ...] = ()
    channel_id: int = 10


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    s = await Store.open(database_url or tmp_path / "bot.sqlite3", clock=clock)
    try:
        yield s
    finally:
        await s.close()


def make_policy(store: Store, **fields: Any) -> QuotaPolicy:
    # Generous unless a test narrows one thing, so each test sees only the limit it is about.
    values: dict[str, Any] = {
        "user_daily_micros": 100 * COST,
        "user_monthly_micros": 100 * COST,
        "bot_daily_micros": 100 * COST,
        "max_active_per_user": None,
        "cooldown_seconds": None,
        # Admins may give anything: these tests are about how limits apply, not who set them.
        "admin_user_daily_micros": 10_000 * COST,
        "admin_user_monthly_micros": 10_000 * COST,
        "admin_max_active_per_user": 100,
        "admin_min_cooldown_seconds": 0.0,
        "admin_may_exempt": True,
    }
    values.update(fields)
    return QuotaPolicy(store, QuotaDefaults(**values))


def admin(
    store: Store, ceilings: Ceilings = NO_CEILINGS, guild_id: int = GUILD, user_id: int = 50
) -> GuildAdmin:
    """A guild admin's changes (by default with no ceilings: the tests of ceilings give them)."""
    return GuildAdmin(store, ceilings, guild_id, Actor(user_id))


async def ask(
    policy: QuotaPolicy,
    asker: Asker | None = None,
    *,
    now: float | None = None,
    cost: int = COST,
) -> Job | Refusal:
    """What JobService.submit does: plan, then check-and-reserve in one transaction."""
    asker = asker or Asker()
    at = policy.store.clock() if now is None else now
    new = NewJob(
        user_id=asker.user_id,
        guild_id=asker.guild_id,
        channel_id=asker.channel_id,
        prompt="a fox in the snow",
        model="sora-2",
        seconds="4",
        size="1280x720",
        cost_micros=cost,
    )
    return await policy.reserve(asker, new, at)


async def granted(policy: QuotaPolicy, asker: Asker | None = None, **kw: Any) -> Job:
    got = await ask(policy, asker, **kw)
    assert isinstance(got, Job), got
    return got


async def refused(policy: QuotaPolicy, asker: Asker | None = None, **kw: Any) -> Refusal:
    got = await ask(policy, asker, **kw)
    assert isinstance(got, Refusal), got
    return got


async def deliver(store: Store, job: Job) -> None:
    await store.mark_create_attempted(job.id, store.clock())
    await store.attach_video(job.id, f"video_{job.id}", "queued", 0)
    await store.mark_succeeded(job.id, store.clock(), store.clock() + 3600)
    assert await store.claim_delivery(job.id)
    await store.finish_delivery(job.id, 555)


# ---------------------------------------------------------------------- concurrency


async def test_fifty_simultaneous_requests_get_exactly_the_budget(store: Store) -> None:
    policy = make_policy(store, user_daily_micros=3 * COST)
    results = await asyncio.gather(*(ask(policy) for _ in range(50)))
    jobs = [r for r in results if isinstance(r, Job)]
    refusals = [r for r in results if isinstance(r, Refusal)]
    assert len(jobs) == 3 and len(refusals) == 47
    assert {r.limit_name for r in refusals} == {USER_DAILY}
    assert all("24-hour budget" in policy.describe(r).plain() for r in refusals)
    # Those planned before any job existed still say when budget comes back: a day from now.
    assert all(r.resets_at == pytest.approx(T0 + DAY_SECONDS, abs=0.01) for r in refusals)
    assert await store.usage(user_id=1) == 3 * COST
    assert (await store.ledger_balances())["held"] == 3 * COST


async def test_fifty_simultaneous_requests_from_many_users_respect_the_bot_cap(
    store: Store,
) -> None:
    policy = make_policy(store, bot_daily_micros=5 * COST)
    results = await asyncio.gather(*(ask(policy, Asker(user_id=u)) for u in range(50)))
    assert sum(isinstance(r, Job) for r in results) == 5
    assert {r.limit_name for r in results if isinstance(r, Refusal)} == {BOT_DAILY}
    assert await store.usage() == 5 * COST


# ---------------------------------------------------------------------- windows


async def test_the_daily_budget_is_a_rolling_24_hours(store: Store) -> None:
    policy = make_policy(store, user_daily_micros=2 * COST)
    await granted(policy, now=T0)
    await granted(policy, now=T0 + 3600)
    refusal = await refused(policy, now=T0 + 7200)
    assert refusal.limit_name == USER_DAILY
    assert refusal.used_micros == 2 * COST and refusal.max_micros == 2 * COST
    # The oldest request leaves the window 24 hours after it was made, freeing its cost.
    assert refusal.resets_at == pytest.approx(T0 + DAY_SECONDS, abs=0.01)
    assert refusal.resets_at is not None
    # Crossing UTC midnight changes nothing: the window is rolling, not a calendar day.
    await refused(policy, now=T0 + DAY_SECONDS)
    # A retry at the time given is admitted.
    await granted(policy, now=refusal.resets_at)
    refusal = await refused(policy, now=T0 + DAY_SECONDS + 1)
    assert refusal.resets_at == pytest.approx(T0 + 3600 + DAY_SECONDS, abs=0.01)


async def test_the_monthly_budget_resets_on_the_first_of_the_month(
    store: Store, clock: Clock
) -> None:
    policy = make_policy(store, user_monthly_micros=2 * COST)
    late = FEB_1 - 600  # 23:50 on 31 January
    await granted(policy, now=T0 - 20 * DAY_SECONDS)  # 11 January
    await granted(policy, now=late)
    refusal = await refused(policy, now=late + 60)
    assert refusal.limit_name == USER_MONTHLY
    assert refusal.resets_at == FEB_1
    assert When(FEB_1) in policy.describe(refusal).shown()
    assert f"<t:{int(FEB_1)}:R>" in markup(policy.describe(refusal))
    # In February the month starts from zero, though the 23:50 request is an hour old.
    await granted(policy, now=FEB_1)
    await granted(policy, now=FEB_1 + 1)
    assert (await refused(policy, now=FEB_1 + 2)).resets_at == datetime(
        2025, 3, 1, tzinfo=UTC
    ).timestamp()


def test_calendar_helpers_roll_over_the_year() -> None:
    dec = datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    assert month_start(dec) == datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    assert next_month_start(dec) == datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    assert utc_day_start(dec) == datetime(2024, 12, 31, tzinfo=UTC).timestamp()
    assert utc_day_start(FEB_1) == FEB_1


async def test_the_bot_wide_daily_cap_counts_every_user(store: Store) -> None:
    policy = make_policy(store, bot_daily_micros=2 * COST, exempt_role_ids=frozenset({9}))
    await granted(policy, Asker(user_id=1))
    await granted(policy, Asker(user_id=2, guild_id=OTHER_GUILD))
    # Exempt roles skip the users' budgets, never the owners' cap.
    refusal = await refused(policy, Asker(user_id=3, role_ids=(9,)))
    assert refusal.limit_name == BOT_DAILY
    assert refusal.resets_at == FEB_1  # the next UTC midnight
    text = policy.describe(refusal).plain()
    assert "bot-wide daily spending cap" in text and "$0.00 of $0.80 left" in text
    # The owners raise it at run time; it is kept in the store.
    await policy.set_bot_daily_cap(3 * COST, by=42)
    assert await make_policy(store).bot_daily_cap() == 3 * COST
    await granted(policy, Asker(user_id=3))
    await refused(policy, Asker(user_id=4))
    # A new UTC day starts from zero.
    await granted(policy, Asker(user_id=4), now=FEB_1)
    # None goes back to the setting.
    await policy.set_bot_daily_cap(None, by=42)
    assert await policy.bot_daily_cap() == 2 * COST
    with pytest.raises(ValueError, match="between"):
        await policy.set_bot_daily_cap(-1, by=42)


async def test_a_guild_cannot_lift_the_bot_cap(store: Store) -> None:
    policy = make_policy(store, bot_daily_micros=COST)
    await admin(store).set_quota("user", 1, EVERY_LIMIT, exempt=True)
    await store.set_guild_setting(GUILD, KEY_USER_DAILY, 100 * COST)
    await granted(policy)
    assert (await refused(policy)).limit_name == BOT_DAILY


# ---------------------------------------------------------------------- per guild, role, member


async def test_a_guild_override_of_the_defaults_stays_in_that_guild(store: Store) -> None:
    policy = make_policy(
        store, user_daily_micros=2 * COST, max_active_per_user=1, cooldown_seconds=60
    )
    await admin(store).set_limits(daily=3 * COST)
    await admin(store).set_limits(active=5)
    await admin(store).set_limits(cooldown=0)
    for _ in range(3):
        await granted(policy, Asker(user_id=1))
    assert (await refused(policy, Asker(user_id=1))).max_micros == 3 * COST
    # Another guild keeps the bot's defaults: one job at a time, a cooldown.
    await granted(policy, Asker(user_id=2, guild_id=OTHER_GUILD))
    refusal = await refused(policy, Asker(user_id=2, guild_id=OTHER_GUILD))
    assert refusal.kind == "active" and refusal.max_active == 1
    plan = await policy.plan(Asker(user_id=2, guild_id=OTHER_GUILD), T0)
    assert plan.cooldown_seconds == 60 and plan.max_active_per_user == 1
    # And so does a DM.
    plan = await policy.plan(Asker(user_id=2, guild_id=None), T0)
    assert [lim.max_micros for lim in plan.limits if lim.name == USER_DAILY] == [2 * COST]
    # A user's budget counts their spending everywhere: the $1.20 spent in the generous guild
    # leaves nothing of the $0.80 default elsewhere.
    refusal = await refused(policy, Asker(user_id=1, guild_id=OTHER_GUILD))
    assert refusal.limit_name == USER_DAILY and refusal.max_micros == 2 * COST
    # Reset: back to the default.
    await admin(store).set_limits(daily=None)
    assert (await load_guild_settings(store, GUILD)).user_daily_micros is None
    assert (await refused(policy, Asker(user_id=1))).max_micros == 2 * COST


async def test_a_member_gets_the_most_generous_of_their_roles(store: Store) -> None:
    policy = make_policy(store, user_daily_micros=COST)
    await admin(store).set_quota("role", 7, USER_DAILY, micros=3 * COST)
    await admin(store).set_quota("role", 8, USER_DAILY, micros=2 * COST)
    both = Asker(user_id=1, role_ids=(7, 8))
    for _ in range(3):
        await granted(policy, both)
    assert (await refused(policy, both)).max_micros == 3 * COST
    only_8 = Asker(user_id=2, role_ids=(8,))
    await granted(policy, only_8)
    await granted(policy, only_8)
    assert (await refused(policy, only_8)).max_micros == 2 * COST
    # The roles belong to their guild.
    assert (
        await refused(policy, dataclasses.replace(only_8, guild_id=OTHER_GUILD))
    ).max_micros == (COST)
    # A member's own budget decides over their roles'.
    await admin(store).set_quota("user", 3, USER_DAILY, micros=0)
    refusal = await refused(policy, Asker(user_id=3, role_ids=(7,)))
    assert refusal.max_micros == 0
    assert "switched off" in policy.describe(refusal).plain()


async def test_exempt_roles_skip_the_member_limits(store: Store) -> None:
    policy = make_policy(
        store,
        user_daily_micros=0,
        user_monthly_micros=0,
        max_active_per_user=1,
        cooldown_seconds=60,
        exempt_role_ids=frozenset({9}),
    )
    # From settings: everywhere the role is held.
    for guild in (GUILD, OTHER_GUILD):
        for _ in range(2):
            await granted(policy, Asker(user_id=1, guild_id=guild, role_ids=(9,)))
    assert (await refused(policy, Asker(user_id=2))).limit_name == USER_MONTHLY
    # From a guild's admins: in that guild only.
    await admin(store).set_quota("role", 5, EVERY_LIMIT, exempt=True)
    for _ in range(2):
        await granted(policy, Asker(user_id=3, role_ids=(5,)))
    await refused(policy, Asker(user_id=4, guild_id=OTHER_GUILD, role_ids=(5,)))
    # Lifting the exemption restores the default.
    await admin(store).set_quota("role", 5, EVERY_LIMIT, exempt=False)
    assert await quota_overrides_for(store, GUILD, "role", 5) == []
    await refused(policy, Asker(user_id=5, role_ids=(5,)))


async def test_lifting_an_exemption_keeps_a_budget(store: Store) -> None:
    await admin(store).set_quota("user", 1, USER_DAILY, micros=COST)
    await admin(store).set_quota("user", 1, EVERY_LIMIT, exempt=True)
    daily = await store.get_quota_override(GUILD, "user", 1, USER_DAILY)
    assert daily is not None and daily.exempt and daily.max_micros == COST
    await admin(store).set_quota("user", 1, EVERY_LIMIT, exempt=False)
    kept = await quota_overrides_for(store, GUILD, "user", 1)
    assert [(o.limit_name, o.max_micros, o.exempt) for o in kept] == [(USER_DAILY, COST, False)]
    assert await admin(store).reset_quota("user", 1) == 1
    assert await quota_overrides_for(store, GUILD, "user", 1) == []


async def test_set_quota_refuses_what_cannot_apply(store: Store) -> None:
    with pytest.raises(ValueError, match="can't be overridden"):
        await admin(store).set_quota("user", 1, BOT_DAILY, exempt=True)
    with pytest.raises(ValueError, match="only be exempted"):
        await admin(store).set_quota("user", 1, ACTIVE_JOBS_LIMIT, micros=5)
    with pytest.raises(ValueError, match="amount in dollars or exempt"):
        await admin(store).set_quota("user", 1, USER_DAILY)
    assert await store.list_quota_overrides(GUILD) == []


# ---------------------------------------------------------------------- active jobs and cooldown


async def test_at_most_n_active_jobs_per_user(store: Store) -> None:
    policy = make_policy(store, max_active_per_user=2)
    first = await granted(policy)
    await granted(policy)
    refusal = await refused(policy)
    assert refusal.kind == "active" and refusal.active_jobs == 2 and refusal.max_active == 2
    assert "2 of 2 videos in progress" in policy.describe(refusal).plain()
    await granted(policy, Asker(user_id=2))  # others are not affected
    await store.mark_failed(first.id, "boom", None)
    await granted(policy)


async def test_cooldown_gives_the_retry_time(store: Store) -> None:
    policy = make_policy(store, cooldown_seconds=30)
    await granted(policy, now=T0)
    refusal = await refused(policy, now=T0 + 10)
    assert refusal.kind == "cooldown"
    assert refusal.retry_after == pytest.approx(20)
    assert refusal.resets_at == pytest.approx(T0 + 30)
    said = policy.describe(refusal)
    assert "20 more seconds" in said.plain() and When(T0 + 30) in said.shown()
    await granted(policy, now=T0 + 30)


async def test_default_defaults_are_two_active_jobs_and_a_cooldown(store: Store) -> None:
    policy = QuotaPolicy(store)
    assert policy.max_active_per_user == 2
    assert policy.cooldown_seconds == 30
    assert policy.max_concurrent == 4
    plan = await policy.plan(Asker(), T0)
    assert isinstance(plan, QuotaPlan)
    assert [lim.name for lim in plan.limits] == [
        USER_MONTHLY,
        USER_DAILY,
        BOT_DAILY,
    ]
    assert (plan.max_active_per_user, plan.cooldown_seconds) == (2, 30)
    assert await policy.limits(Asker(), T0) == plan.limits


# ---------------------------------------------------------------------- what the user reads


def spend(name: str, used: int, cap: int, cost: int, resets_at: float | None) -> Refusal:
    return Refusal(
        kind="spend",
        limit_name=name,
        used_micros=used,
        max_micros=cap,
        cost_micros=cost,
        resets_at=resets_at,
    )


async def test_describe_names_the_limit_what_is_left_and_the_reset(store: Store) -> None:
    policy = make_policy(store)

    def said(refusal: Refusal) -> str:
        # As Discord shows it: the core's notice in Discord's markup.
        return markup(policy.describe(refusal))

    text = said(spend(USER_DAILY, 1_600_000, 2_000_000, 800_000, T0 + 3600))
    assert "24-hour budget" in text
    assert "$0.40 of $2.00 left" in text and "costs $0.80" in text
    assert f"<t:{int(T0 + 3600)}:R>" in text
    text = said(spend(USER_MONTHLY, 19_900_000, 20_000_000, 400_000, FEB_1))
    assert "monthly budget" in text and "$0.10 of $20.00 left" in text
    assert f"resets <t:{int(FEB_1)}:R>" in text
    # Fractional reset times round up, never down to a time already past.
    assert "<t:1001:R>" in said(spend(BOT_DAILY, 1, 1, 1, 1000.2))
    # A ceiling lowered below what was used shows nothing left, never a negative amount.
    assert "$0.00 of $1.00 left" in said(spend(USER_DAILY, 3_000_000, 1_000_000, 1, None))
    # A request over the whole budget is told so: waiting would not help.
    text = said(spend(USER_DAILY, 0, 2_000_000, 6_000_000, None))
    assert "costs $6.00, more than your whole 24-hour budget of $2.00" in text
    assert "paused" in said(spend(BOT_DAILY, 0, 0, 1, FEB_1))
    assert "'weekly' limit" in said(spend("weekly", 0, 1, 2, None))
    # The core's words carry no markup: the command line shows them as they are.
    plain = policy.describe(spend(USER_MONTHLY, 0, 1, 1, FEB_1)).plain()
    assert "<t:" not in plain and "2025-02-01 00:00 UTC" in plain


# ---------------------------------------------------------------------- /quota and usage


async def test_usage_report_figures(store: Store, clock: Clock) -> None:
    policy = make_policy(
        store,
        user_daily_micros=2_000_000,
        user_monthly_micros=20_000_000,
        bot_daily_micros=25_000_000,
        max_active_per_user=2,
        cooldown_seconds=30,
    )
    await granted(policy, now=T0 - 2 * DAY_SECONDS)  # this month, not today
    failed = await granted(policy, now=T0 - 7200, cost=1_000_000)
    await store.mark_failed(failed.id, "boom", None)
    await deliver(store, await granted(policy, now=T0 - 3600, cost=800_000))
    await granted(policy, Asker(user_id=2), now=T0 - 30)  # someone else
    fresh = await policy.usage_report(9, GUILD, (), now=T0)
    assert fresh.windows[0].used_micros == 0 and fresh.windows[0].resets_at is None
    report = await policy.usage_report(1, GUILD, (), now=T0)
    daily, monthly = report.windows
    assert (daily.name, daily.used_micros, daily.max_micros) == (
        USER_DAILY,
        800_000,
        2_000_000,
    )
    assert daily.left_micros == 1_200_000 and daily.rolling
    # The refunded request does not count; the settled one ages out first.
    assert daily.resets_at == pytest.approx(T0 - 3600 + DAY_SECONDS, abs=0.01)
    assert (monthly.used_micros, monthly.left_micros) == (1_200_000, 18_800_000)
    assert monthly.resets_at == FEB_1 and not monthly.rolling
    assert (report.bot.used_micros, report.bot.max_micros) == (1_200_000, 25_000_000)
    assert report.bot.resets_at == FEB_1
    assert report.left_micros == 1_200_000
    assert report.active_jobs == 1  # the first is still held, not delivered
    assert report.max_active == 2
    assert report.next_request_at is None  # the last ask was an hour ago
    earlier = await policy.usage_report(1, GUILD, (), now=T0 - 3590)
    assert earlier.next_request_at == pytest.approx(T0 - 3600 + 30)
    # Roles and exemptions show as the next request would be checked.
    await admin(store).set_quota("role", 7, USER_DAILY, micros=5_000_000)
    await admin(store).set_quota("user", 2, EVERY_LIMIT, exempt=True)
    with_role = await policy.usage_report(1, GUILD, (7,), now=T0)
    assert with_role.windows[0].max_micros == 5_000_000
    exempt = await policy.usage_report(2, GUILD, (), now=T0)
    assert exempt.windows[0].exempt and exempt.windows[0].left_micros is None
    assert exempt.max_active is None and exempt.cooldown_seconds is None
    assert exempt.windows[0].resets_at == pytest.approx(T0 - 30 + DAY_SECONDS, abs=0.01)
    # In another guild the member has no exemption.
    elsewhere = await policy.usage_report(2, OTHER_GUILD, (), now=T0)
    assert elsewhere.windows[0].max_micros == 2_000_000


async def test_guild_usage_today_month_and_top_members(store: Store) -> None:
    policy = make_policy(store)
    await granted(policy, Asker(user_id=1), now=T0 - 20 * DAY_SECONDS, cost=3 * COST)
    await granted(policy, Asker(user_id=2), now=T0, cost=2 * COST)
    await granted(policy, Asker(user_id=1), now=T0, cost=COST)
    await granted(policy, Asker(user_id=3, guild_id=OTHER_GUILD), now=T0, cost=9 * COST)
    usage = await policy.guild_usage(GUILD, now=T0)
    assert usage.today_micros == 3 * COST
    assert usage.month_micros == 6 * COST
    assert usage.top_month == ((1, 4 * COST), (2, 2 * COST))


# ---------------------------------------------------------------------- money moves


async def test_a_refund_frees_budget_and_a_settlement_keeps_it_spent(
    store: Store, clock: Clock
) -> None:
    policy = make_policy(store, user_daily_micros=2 * COST)
    first = await granted(policy)
    second = await granted(policy)
    assert (await refused(policy)).used_micros == 2 * COST
    # A failed job's hold is refunded: its budget is free again.
    await store.mark_failed(first.id, "create_failed", "the API said no")
    third = await granted(policy)
    # A delivered job is settled: still counted, so no budget comes back.
    await deliver(store, second)
    assert (await refused(policy)).used_micros == 2 * COST
    # A finished video that expired before delivery is refunded.
    await store.mark_create_attempted(third.id, clock())
    await store.attach_video(third.id, "video_x", "queued", 0)
    await store.mark_succeeded(third.id, clock(), clock() + 60)
    await store.expire_undelivered(third.id)
    await granted(policy)
    balances = await store.ledger_balances()
    assert balances == {"held": COST, "spent": COST}


# ---------------------------------------------------------------------- guild settings


async def test_guild_settings_round_trip_and_check(store: Store) -> None:
    assert await load_guild_settings(store, GUILD) == GuildSettings()
    await admin(store).set_models(["sora-2", "sora-2"])
    await admin(store).set_max_seconds(8)
    await admin(store).set_channels([30, 20, 30])
    got = await load_guild_settings(store, GUILD)
    assert got.allowed_models == ("sora-2",)
    assert got.max_seconds == 8
    assert got.channel_ids == (20, 30)
    assert await load_guild_settings(store, OTHER_GUILD) == GuildSettings()
    assert await load_guild_settings(store, None) == GuildSettings()

    assert check_request(got, "sora-2", "8", 20) is None
    assert check_request(got, "sora-2", 4, 99, parent_channel_id=30) is None  # a thread
    where = check_request(got, "sora-2", "4", 99)
    assert where is not None
    assert ChannelRef(20) in where.shown() and ChannelRef(30) in where.shown()
    assert "<#20>, <#30>" in markup(where)
    model = check_request(got, "sora-2-pro", "4", 20)
    assert model is not None and Code("sora-2-pro") in model.shown()
    assert "Allowed: `sora-2`." in markup(model)
    seconds = check_request(got, "sora-2", "12", 20)
    assert seconds is not None and "8 seconds" in seconds.plain()
    assert check_request(GuildSettings(), "anything", "60", 1) is None

    await admin(store).set_models(None)
    await admin(store).set_max_seconds(None)
    await admin(store).set_channels([])
    assert await load_guild_settings(store, GUILD) == GuildSettings()


async def test_bad_guild_settings_are_refused_or_ignored(store: Store) -> None:
    with pytest.raises(ValueError, match="at least one model"):
        await admin(store).set_models([])
    with pytest.raises(ValueError, match="at least one second"):
        await admin(store).set_max_seconds(0)
    with pytest.raises(ValueError, match="budget"):
        await admin(store).set_limits(monthly=-1)
    with pytest.raises(ValueError, match="1 to 100"):
        await admin(store).set_limits(active=0)
    with pytest.raises(ValueError, match="cooldown"):
        await admin(store).set_limits(cooldown=-5)
    # A malformed stored value (a hand edit) falls back to the default instead of breaking /video.
    await store.set_guild_setting(GUILD, KEY_USER_DAILY, "lots")
    await store.set_guild_setting(GUILD, KEY_CHANNEL_IDS, {"not": "a list"})
    await store.set_guild_setting(GUILD, KEY_MAX_ACTIVE, -3)
    got = await load_guild_settings(store, GUILD)
    assert got.user_daily_micros is None and got.channel_ids is None
    assert got.max_active_per_user is None
    plan = await make_policy(store, user_daily_micros=COST).plan(Asker(), T0)
    assert [lim.max_micros for lim in plan.limits if lim.name == USER_DAILY] == [COST]


# ---------------------------------------------------------------------- settings and owners


def test_defaults_come_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = load_settings(
        quota_user_daily_dollars="$3.50",
        quota_user_monthly_dollars="30",
        quota_bot_daily_dollars=Decimal("0.000001"),
        quota_exempt_role_ids="7, 8",
        quota_max_active_per_user=3,
        quota_cooldown_seconds=0,
        quota_max_concurrent_jobs=6,
        owner_ids="42",
    )
    defaults = QuotaDefaults.from_settings(settings)
    assert defaults == QuotaDefaults(
        user_daily_micros=3_500_000,
        user_monthly_micros=30_000_000,
        bot_daily_micros=1,
        max_active_per_user=3,
        cooldown_seconds=None,
        max_concurrent=6,
        exempt_role_ids=frozenset({7, 8}),
        owner_ids=frozenset({42}),
    )
    plain = QuotaDefaults.from_settings(load_settings())
    assert plain == QuotaDefaults()  # the documented defaults agree


def test_bad_quota_settings_name_themselves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.settings import SettingsError

    monkeypatch.chdir(tmp_path)
    for name, value in (
        ("QUOTA_USER_DAILY_DOLLARS", "-1"),
        ("QUOTA_BOT_DAILY_DOLLARS", "nan"),
        ("QUOTA_USER_MONTHLY_DOLLARS", "0.0000001"),
        ("QUOTA_MAX_ACTIVE_PER_USER", "0"),
        ("QUOTA_EXEMPT_ROLE_IDS", "admins"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=f"^{name}: "):
            load_settings()
        monkeypatch.delenv(name)


async def test_owners(store: Store) -> None:
    policy = make_policy(store, owner_ids=frozenset({42}))
    assert policy.is_owner(42) and not policy.is_owner(43)


@pytest.mark.parametrize(
    ("text", "micros"),
    [("5", 5_000_000), ("$2.50", 2_500_000), (" 0.000001 ", 1), ("1,000", 1_000_000_000)],
)
def test_parse_dollars(text: str, micros: int) -> None:
    assert parse_dollars(text) == micros


@pytest.mark.parametrize("text", ["", "five", "-1", "NaN", "Infinity", "0.0000001", "2000000"])
def test_parse_dollars_refuses(text: str) -> None:
    with pytest.raises(NoticeError) as refused:
        parse_dollars(text)
    # The notice quotes what was typed, as typed.
    assert refused.value.notice.shown()[0] == Code(text)


def test_a_budget_option_takes_dollars_or_default() -> None:
    assert parse_budget(" Default ") is None
    assert parse_budget("$1.25") == 1_250_000
    with pytest.raises(NoticeError):
        parse_budget("defaults")


# ---------------------------------------------------------------------- the owner's ceilings


def owner_ceilings(**fields: Any) -> Ceilings:
    """The ceilings as the bot's documented defaults make them, changed by `fields`."""
    return QuotaDefaults(**fields).ceilings


async def test_by_default_admins_can_lower_limits_but_not_raise_them(store: Store) -> None:
    ceilings = owner_ceilings()  # $2.00 a day, $20.00 a month, 2 at once, a 30 s cooldown
    assert ceilings.spend == {USER_DAILY: 2_000_000, USER_MONTHLY: 20_000_000}
    assert (ceilings.max_active, ceilings.min_cooldown, ceilings.may_exempt) == (2, 30.0, False)
    guild_admin = admin(store, ceilings)
    with pytest.raises(
        OverCeiling, match=r"at most \$2\.00 \(ADMIN_MAX_USER_DAILY_DOLLARS\)"
    ) as over:
        await guild_admin.set_quota("user", 1, USER_DAILY, micros=2_000_001)
    assert Code("ADMIN_MAX_USER_DAILY_DOLLARS") in over.value.notice.shown()
    with pytest.raises(OverCeiling, match="ADMIN_MAX_USER_MONTHLY_DOLLARS"):
        await guild_admin.set_quota("role", 7, USER_MONTHLY, micros=25_000_000)
    assert await store.list_quota_overrides(GUILD) == []
    # Up to the ceiling, and anything below it, is fine.
    await guild_admin.set_quota("user", 1, USER_DAILY, micros=2_000_000)
    await guild_admin.set_quota("user", 1, USER_DAILY, micros=0)
    # The server's defaults: each value is checked, and one past its ceiling stops them all.
    ok = 1_000_000
    for attempt, setting in (
        (guild_admin.set_limits(daily=2_500_000), "ADMIN_MAX_USER_DAILY_DOLLARS"),
        (guild_admin.set_limits(daily=ok, monthly=20_000_001), "ADMIN_MAX_USER_MONTHLY_DOLLARS"),
        (guild_admin.set_limits(daily=ok, active=3), "ADMIN_MAX_ACTIVE_PER_USER"),
        (guild_admin.set_limits(daily=ok, cooldown=29.0), "ADMIN_MIN_COOLDOWN_SECONDS"),
    ):
        with pytest.raises(OverCeiling, match=setting):
            await attempt
    assert await load_guild_settings(store, GUILD) == GuildSettings()
    await guild_admin.set_limits(daily=1_000_000, monthly=0, active=1, cooldown=3600)
    assert await load_guild_settings(store, GUILD) == GuildSettings(
        user_daily_micros=1_000_000,
        user_monthly_micros=0,
        max_active_per_user=1,
        cooldown_seconds=3600.0,
    )
    # Back to the bot's values is always allowed.
    await guild_admin.set_limits(reset=True)
    assert await load_guild_settings(store, GUILD) == GuildSettings()


async def test_exemptions_only_where_the_owner_allows_them(store: Store) -> None:
    strict = admin(store, owner_ceilings())
    for limit in (EVERY_LIMIT, USER_DAILY, ACTIVE_JOBS_LIMIT, COOLDOWN_LIMIT):
        with pytest.raises(OverCeiling, match="ADMIN_MAY_EXEMPT"):
            await strict.set_quota("role", 5, limit, exempt=True)
    assert await store.list_quota_overrides(GUILD) == []
    # Lifting an exemption is lowering: always allowed.
    await admin(store).set_quota("role", 5, EVERY_LIMIT, exempt=True)
    await strict.set_quota("role", 5, EVERY_LIMIT, exempt=False)
    assert await store.list_quota_overrides(GUILD) == []
    lenient = admin(store, owner_ceilings(admin_may_exempt=True))
    await lenient.set_quota("role", 5, EVERY_LIMIT, exempt=True)
    assert all(o.exempt for o in await store.list_quota_overrides(GUILD))


def test_the_ceilings_come_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    unset = QuotaDefaults.from_settings(load_settings(quota_user_daily_dollars="3"))
    assert unset.ceilings == Ceilings(
        spend={USER_DAILY: 3_000_000, USER_MONTHLY: 20_000_000},
        max_active=2,
        min_cooldown=30.0,
        may_exempt=False,
    )
    chosen = QuotaDefaults.from_settings(
        load_settings(
            admin_max_user_daily_dollars="$5",
            admin_max_user_monthly_dollars="50.5",
            admin_max_active_per_user=4,
            admin_min_cooldown_seconds=0,
            admin_may_exempt="true",
        )
    )
    assert chosen.ceilings == Ceilings(
        spend={USER_DAILY: 5_000_000, USER_MONTHLY: 50_500_000},
        max_active=4,
        min_cooldown=0.0,
        may_exempt=True,
    )


async def test_stored_limits_above_the_ceilings_count_as_the_ceilings(store: Store) -> None:
    # Written before there were ceilings: a generous server and an exempt role.
    unbounded = admin(store)
    await unbounded.set_limits(daily=100 * COST, active=50, cooldown=0)
    await unbounded.set_quota("user", 1, USER_MONTHLY, micros=100 * COST)
    await unbounded.set_quota("role", 9, EVERY_LIMIT, exempt=True)
    policy = QuotaPolicy(
        store,
        QuotaDefaults(
            user_daily_micros=2 * COST,
            user_monthly_micros=2 * COST,
            max_active_per_user=1,
            cooldown_seconds=60.0,
            admin_user_daily_micros=3 * COST,
            admin_user_monthly_micros=3 * COST,
            admin_max_active_per_user=2,
            admin_min_cooldown_seconds=10.0,
        ),
    )
    plan = await policy.plan(Asker(user_id=1), T0)
    by_name = {lim.name: lim.max_micros for lim in plan.limits}
    assert by_name[USER_DAILY] == 3 * COST  # the server's 100 x, capped
    assert (plan.max_active_per_user, plan.cooldown_seconds) == (2, 10.0)
    await granted(policy, Asker(user_id=1))
    await granted(policy, Asker(user_id=1), now=T0 + 10)  # the floor, not the server's 0 s
    assert (await refused(policy, Asker(user_id=1), now=T0 + 20)).kind == "active"
    # The member's own monthly budget is capped too.
    report = await policy.usage_report(1, GUILD, (), now=T0)
    assert [w.max_micros for w in report.windows] == [3 * COST, 3 * COST]
    # An exemption the owner does not allow is as generous as an admin may be, no more.
    exempt = Asker(user_id=2, role_ids=(9,))
    report = await policy.usage_report(2, GUILD, (9,), now=T0)
    assert [w.max_micros for w in report.windows] == [3 * COST, 3 * COST]
    assert (report.max_active, report.cooldown_seconds) == (2, 10.0)
    for _ in range(2):
        await granted(policy, exempt, now=T0 + 3600 * len(await store.recent_jobs(2, 10)))
    refusal = await refused(policy, exempt, now=T0 + 7200)
    assert refusal.kind == "active" and refusal.max_active == 2
    # Where the owner allows exemptions, the stored one applies in full.
    lenient = QuotaPolicy(store, dataclasses.replace(policy.defaults, admin_may_exempt=True))
    report = await lenient.usage_report(2, GUILD, (9,), now=T0)
    assert report.windows[0].exempt and report.max_active is None


async def test_every_change_and_refusal_is_audited_with_before_and_after(store: Store) -> None:
    guild_admin = admin(store, owner_ceilings(), user_id=77)
    await guild_admin.set_quota("user", 1, USER_DAILY, micros=1_500_000)
    with pytest.raises(OverCeiling):
        await guild_admin.set_quota("user", 1, USER_DAILY, micros=9_000_000)
    await guild_admin.set_limits(daily=1_000_000, monthly=5_000_000, active=1, cooldown=45)
    assert await admin(store).reset_quota("user", 1) == 1
    await make_policy(store).set_bot_daily_cap(7 * COST, by=42)

    newest, limits, refused_entry, first = await store.audit_entries(GUILD, 10)
    item = "override:user:1:daily"
    assert (first.actor_id, first.actor_kind, first.action, first.target) == (
        77,
        "admin",
        "quota.set",
        "user:1",
    )
    assert first.before == {item: None} and not first.refused
    assert first.after == {item: {"max_micros": 1_500_000, "exempt": False}}
    # A refused attempt: marked, with the reason, what was asked for, and nothing changed.
    assert refused_entry.refused and "ADMIN_MAX_USER_DAILY_DOLLARS" in (refused_entry.reason or "")
    assert refused_entry.before == first.after
    assert refused_entry.after == {item: {"max_micros": 9_000_000, "exempt": False}}
    # Four settings, one entry.
    assert limits.action == "settings.limits"
    assert limits.after == {
        "setting:quota.cooldown_seconds": 45.0,
        "setting:quota.daily_micros": 1_000_000,
        "setting:quota.max_active_per_user": 1,
        "setting:quota.monthly_micros": 5_000_000,
    }
    assert set(limits.before.values()) == {None}
    assert newest.action == "quota.reset" and newest.after == {item: None}
    assert [line.plain() for line in change_lines(first)] == ["24-hour budget: default → $1.50"]
    assert "server's cooldown: default → 45 s" in [line.plain() for line in change_lines(limits)]
    # The owner's change is bot-wide: not in the guild's audit.
    assert await store.count_audit(GUILD) == 4
    (cap,) = await store.audit_entries(None, 10)
    assert (cap.actor_id, cap.actor_kind, cap.action) == (42, "owner", "cap")
    assert [line.plain() for line in change_lines(cap)] == ["bot-wide daily cap: default → $2.80"]
    # Paging, newest first.
    assert [e.id for e in await store.audit_entries(GUILD, 2, 2)] == [refused_entry.id, first.id]


async def test_a_change_that_fails_leaves_no_audit_and_no_part_of_itself(store: Store) -> None:
    from bot.store.audit import AuditDraft, Change

    draft = AuditDraft(guild_id=GUILD, actor_id=1, actor_kind="admin", action="settings.limits")
    bad = Change(GUILD, settings={"quota.daily_micros": 5, "quota.cooldown_seconds": float("nan")})
    with pytest.raises(ValueError):
        await store.audited_change(draft, bad)
    assert await store.all_guild_settings(GUILD) == {}
    assert await store.count_audit(GUILD) == 0
    # The audit is append-only.
    await store.audited_change(draft, Change(GUILD, settings={"quota.daily_micros": 5}))
    with pytest.raises(IntegrityErrors, match="append-only"):
        async with store.transaction() as conn:
            await execute(conn, "UPDATE audit SET refused = 1")


# ---------------------------------------------------------------------- changes that merge


async def test_simultaneous_quota_changes_never_lose_one(store: Store) -> None:
    """A budget and an exemption given at the same moment: each change merges into what is
    stored inside its own transaction, so neither is lost to a read made before the other."""
    for attempt in range(10):
        member = 1000 + attempt
        await asyncio.gather(
            admin(store, user_id=1).set_quota("user", member, USER_DAILY, micros=COST),
            admin(store, user_id=2).set_quota("user", member, EVERY_LIMIT, exempt=True),
        )
        daily = await store.get_quota_override(GUILD, "user", member, USER_DAILY)
        # Budget first, then the exemption (which keeps it); or the exemption first, then the
        # budget (which ends it). Never an exemption that forgot the budget.
        assert daily is not None and daily.max_micros == COST
        entries = await store.audit_entries(GUILD, 2)
        assert {e.action for e in entries} == {"quota.set", "quota.exempt"}


async def test_channels_are_changed_from_the_stored_list(store: Store) -> None:
    guild_admin = admin(store)
    await asyncio.gather(*(guild_admin.change_channels("add", c) for c in (30, 20, 30, 40)))
    assert (await load_guild_settings(store, GUILD)).channel_ids == (20, 30, 40)
    await guild_admin.change_channels("remove", 30)
    assert (await load_guild_settings(store, GUILD)).channel_ids == (20, 40)
    audited = await store.count_audit(GUILD)
    # Removing one that is not listed says so; nothing is written or audited.
    with pytest.raises(NoticeError) as missing:
        await guild_admin.change_channels("remove", 99)
    assert missing.value.notice.shown()[0] == ChannelRef(99)
    with pytest.raises(NoticeError, match="Choose the channel to add"):
        await guild_admin.change_channels("add")
    assert await store.count_audit(GUILD) == audited
    assert (await load_guild_settings(store, GUILD)).channel_ids == (20, 40)
    # Removing the last one, or clearing, allows every channel again.
    await guild_admin.change_channels("remove", 20)
    await guild_admin.change_channels("remove", 40)
    assert await load_guild_settings(store, GUILD) == GuildSettings()
    await guild_admin.change_channels("add", 5)
    await guild_admin.change_channels("clear")
    assert await load_guild_settings(store, GUILD) == GuildSettings()
    (newest,) = await store.audit_entries(GUILD, 1)
    assert newest.before == {f"setting:{KEY_CHANNEL_IDS}": [5]}
    assert [line.plain() for line in change_lines(newest)] == ["channels: channel 5 → default"]


def test_stored_overrides_say_what_they_count_as() -> None:
    ceilings = owner_ceilings()  # $2.00 a day, no exemptions
    stored = [
        QuotaOverride(
            guild_id=GUILD, target_kind="user", target_id=1, limit_name=COOLDOWN_LIMIT, exempt=True
        ),
        QuotaOverride(
            guild_id=GUILD,
            target_kind="user",
            target_id=1,
            limit_name=USER_DAILY,
            max_micros=100 * COST,
        ),
    ]
    shown = stored_overrides(stored, ceilings)
    # In the order of the limits, the budget capped at the owner's ceiling.
    assert [(s.label.plain(), s.capped_at) for s in shown] == [
        ("24-hour budget", 2_000_000),
        ("cooldown between requests", None),
    ]
    text: Notice = describe_overrides(shown)
    assert text.plain().splitlines() == [
        "• 24-hour budget: $40.00 — counts as $2.00, the bot owner's ceiling",
        "• cooldown between requests: exempt — not allowed by the bot's owner: counts as the "
        "most admins may give",
    ]
    assert describe_overrides(stored_overrides([], NO_CEILINGS)).plain() == (
        "None: this server's defaults apply."
    )
