"""Quotas and server administration end to end: `/video` refusals over a limit, `/quota`,
`/video-admin` and `/video-owner`, with the real discord.py client against the fake Discord, the
simulator over loopback and a real SQLite file. Money is checked in the ledger itself."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.catalog import format_dollars
from bot.store import Job, Store
from discordbot.client import VideoBot
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, FakeDiscordError, Guild, Interaction, Role, User
from tests.fakediscord.state import (
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    MANAGE_GUILD,
    Channel,
    Message,
)

T = TypeVar("T")

COST = 400_000  # the default request (sora-2, 4 s, 720x1280): $0.40
DAY = 86_400.0


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url, users=6) as env:
        yield env


# ---------------------------------------------------------------------- helpers


def text(message: Message | None) -> str:
    """Everything a reader sees of a message: content, embed title, description, fields."""
    if message is None:
        return ""
    parts = [message.content or ""]
    embed = message.embed or {}
    parts += [str(embed.get("title", "")), str(embed.get("description", ""))]
    for f in embed.get("fields", []):
        parts += [str(f["name"]), str(f["value"])]
    parts.append(str((embed.get("footer") or {}).get("text", "")))
    return "\n".join(parts)


def refusal(interaction: Interaction) -> Message | None:
    """The private message saying why nothing was started, once there is one."""
    if interaction.followups:
        return interaction.followups[-1]
    if interaction.response_type == CALLBACK_CHANNEL_MESSAGE:
        return interaction.original
    return None


def accepted(interaction: Interaction) -> bool:
    """The public reply shows a job (its footer names it)."""
    original = interaction.original
    if original is None or original.loading or original.deleted or interaction.followups:
        return False
    footer = ((original.embed or {}).get("footer") or {}).get("text", "")
    return str(footer).startswith("job ")


def resolved(interaction: Interaction) -> bool:
    return refusal(interaction) is not None or accepted(interaction)


def has_video(interaction: Interaction) -> bool:
    return interaction.original is not None and video_attachment(interaction.original) is not None


async def until(check: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:  # noqa: ASYNC109
    """Wait for a condition on state the fake Discord cannot see (the bot's database)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def video(
    w: World, prompt: str, user: User, channel: Channel | None = None, **options: str
) -> Interaction:
    """Run `/video` and wait until it is either refused or shows its job."""
    interaction = await w.fake.dispatch_slash(
        "video", {"prompt": prompt, **options}, user=user, channel=channel or w.channel
    )
    await w.wait_for(lambda: resolved(interaction), timeout=30)
    return interaction


async def command(
    w: World, name: str, options: dict[str, Any], user: User, channel: Channel | None = None
) -> Message:
    """Run an admin or quota command and return its (private) answer."""
    interaction = await w.fake.dispatch_slash(
        name, options, user=user, channel=channel or w.channel
    )

    def answered() -> Message | None:
        original = interaction.original
        if original is not None and not original.loading and original.embed:
            return original
        return None

    message: Message = await w.wait_for(answered, timeout=10)
    assert message.ephemeral, name
    return message


async def my_quota(w: World, user: User, channel: Channel | None = None) -> str:
    return text(await command(w, "quota", {}, user, channel))


async def settled(bot: VideoBot, timeout: float = 60.0) -> list[Job]:  # noqa: ASYNC109
    """Wait until every job has finished and its result reached Discord; all jobs."""

    async def done() -> bool:
        return not await bot.store.active_jobs() and not await bot.store.undelivered_jobs()

    await until(done, timeout)
    return await all_jobs(bot.store)


async def all_jobs(store: Store) -> list[Job]:
    jobs: list[Job] = []
    job_id = 1
    while (job := await store.get_job(job_id)) is not None:
        jobs.append(job)
        job_id += 1
    return jobs


def creates(w: World) -> int:
    return sum(1 for r in w.sim.requests if r.method == "POST" and r.route == "POST /videos")


def owner_of(w: World, guild: Guild | None = None) -> User:
    """The guild's owner: every permission, so Manage Server."""
    return w.fake.users[(guild or w.guild).owner_id]


def give_role(w: World, user: User, role: Role, guild: Guild | None = None) -> None:
    member = (guild or w.guild).member(user)
    assert member is not None
    member.roles.append(role)


async def assert_books_balance(store: Store) -> None:
    """The ledger's account totals are the sums of every job's entries, and no job holds or
    spends what its state does not allow."""
    by_job = await store.ledger_sum_by_job()
    totals = await store.ledger_balances()
    assert totals["held"] == sum(b.held for b in by_job.values())
    assert totals["spent"] == sum(b.spent for b in by_job.values())
    for job in await all_jobs(store):
        balance = by_job[job.id]
        if job.state == "failed":
            assert balance == (0, 0), job
        elif job.state == "succeeded" and job.delivery_state == "done":
            assert balance == (0, job.cost_micros), job
        else:
            assert balance == (job.cost_micros, 0), job


# ---------------------------------------------------------------------- limits on /video


async def test_fifty_simultaneous_requests_against_a_budget_for_three_create_exactly_three(
    w: World,
) -> None:
    async with w.bot(quota_user_daily_dollars="1.20") as bot:
        interactions = await asyncio.gather(
            *(
                w.fake.dispatch_slash(
                    "video", {"prompt": f"clip {i}"}, user=w.user, channel=w.channel
                )
                for i in range(50)
            )
        )
        await w.wait_for(lambda: all(resolved(i) for i in interactions), timeout=60)
        admitted = [i for i in interactions if accepted(i)]
        refused = [i for i in interactions if refusal(i) is not None]
        # While the three run, their cost is held, not spent.
        jobs = await all_jobs(bot.store)
        assert len(jobs) == 3
        for job in jobs:
            assert await bot.store.open_hold(job.id) in (0, COST)
        await w.wait_for(lambda: all(has_video(i) for i in admitted), timeout=60)
        jobs = await settled(bot)
        quota = await my_quota(w, w.user)
    assert creates(w) == 3
    assert len(w.sim.videos) == 3
    assert len(admitted) == 3
    assert len(refused) == 47
    # Every one was deferred within Discord's three seconds; the refusals were private and the
    # public "thinking…" placeholder went away.
    assert all(i.response_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE for i in interactions)
    for interaction in refused:
        message = refusal(interaction)
        assert message is not None and message.ephemeral
        said = text(message)
        assert "24-hour budget is used up" in said
        assert "$0.00 of $1.20 left" in said
        assert "this video costs $0.40" in said
        assert "<t:" in said and ":R>" in said
        assert interaction.original is not None and interaction.original.deleted
    public = {m.id for m in w.messages() if not m.ephemeral and not m.deleted and m.embed}
    assert public == {i.original.id for i in admitted if i.original is not None}
    # Settled on delivery: exactly what was spent, nothing held.
    assert {j.state for j in jobs} == {"succeeded"}
    balances = await _ledger(w)
    assert [b for b in balances.values()] == [(0, COST)] * 3
    assert "$1.20 of $1.20 used" in quota
    assert "Nothing is left to spend right now" in quota


async def test_a_monthly_refusal_says_what_is_left_and_when_it_resets(w: World) -> None:
    async with w.bot(quota_user_monthly_dollars="1.00") as bot:
        first = await video(w, "a long one", w.user, seconds="8")
        assert accepted(first)
        second = await video(w, "one more", w.user)
        third = await video(w, "a huge one", w.user, model="sora-2-pro", size="1792x1024")
        await settled(bot)
    said = text(refusal(second))
    assert "Your monthly budget is used up: $0.20 of $1.00 left" in said
    assert "this video costs $0.40" in said
    assert "It resets <t:" in said
    # Over the whole budget: said so, rather than "wait for it to reset".
    assert "more than your whole monthly budget of $1.00" in text(refusal(third))
    assert creates(w) == 1


async def test_quota_shows_each_window_with_what_is_left_and_when_it_comes_back(
    w: World,
) -> None:
    async with w.bot(
        quota_user_daily_dollars="2.00",
        quota_user_monthly_dollars="5.00",
        quota_cooldown_seconds=600,
        quota_max_active_per_user=3,
    ) as bot:
        fresh = await my_quota(w, w.user)
        made = await video(w, "a tree", w.user, seconds="8")
        assert accepted(made)
        busy = await my_quota(w, w.user)
        cooled = await video(w, "another tree", w.user)
        (job,) = await settled(bot)
        after = await my_quota(w, w.user)
    assert "A video costing up to **$2.00** can be started now." in fresh
    assert "$0.00 of $2.00 used · **$2.00 left**" in fresh
    assert "$0.00 of $5.00 used · **$5.00 left**" in fresh
    assert "0 of 3" in fresh
    assert "600 s between requests" in fresh
    # The held cost counts at once; the rolling window says when it ages out.
    assert "$0.80 of $2.00 used · **$1.20 left**" in busy
    assert f"the next <t:{math.ceil(job.created_at + DAY + 0.001)}:R>" in busy
    assert "$0.80 of $5.00 used · **$4.20 left**" in busy
    assert "The next request can be made <t:" in busy
    assert "Please wait" in text(refusal(cooled))
    assert "You can ask again <t:" in text(refusal(cooled))
    assert "$0.80 of $2.00 used" in after
    assert "Bot-wide daily cap" in after


# ---------------------------------------------------------------------- refunds and settlement


@dataclasses.dataclass
class RefundCase:
    prompt: str
    code: str | None  # the failure code recorded, when the path has a fixed one
    break_: Callable[[World, VideoBot], None]
    heal: Callable[[World, VideoBot], None]


def _rate_limit_create(w: World, bot: VideoBot) -> None:
    w.sim.config.retry_after_seconds = 0.05
    # The client retries a 429 create (the server certainly did nothing): 1 + 2 retries.
    w.sim.inject("POST /videos", "429", times=3)


def _unconfirmed_create(w: World, bot: VideoBot) -> None:
    # A 500 on a create is ambiguous: the tracker looks for the job at once, and with a grace
    # period this short gives it up and refunds it before a second clean read could resend it.
    w.sim.inject("POST /videos", "500", times=1)
    bot.tracker.create_grace = 0.5


def _moderate(w: World, bot: VideoBot) -> None:
    w.sim.config.moderation_word = "forbidden"


def _fail_every_job(w: World, bot: VideoBot) -> None:
    w.sim.config.fail_rate = 1.0


def _heal_failures(w: World, bot: VideoBot) -> None:
    w.sim.config.fail_rate = 0.0


def _expire_at_once(w: World, bot: VideoBot) -> None:
    w.sim.config.retention_seconds = 0.0


def _keep_an_hour(w: World, bot: VideoBot) -> None:
    w.sim.config.retention_seconds = 3600.0


def _slow_past_deadline(w: World, bot: VideoBot) -> None:
    w.sim.config.job_seconds = 30.0
    bot.jobs.deadline_seconds = 1.0


def _normal_speed(w: World, bot: VideoBot) -> None:
    w.sim.config.job_seconds = 1.5
    bot.jobs.deadline_seconds = 3600.0


def _nothing(w: World, bot: VideoBot) -> None:
    return None


REFUND_CASES = {
    "create rate limited": RefundCase("a calm lake", None, _rate_limit_create, _nothing),
    "create never confirmed": RefundCase(
        "a calm lake", "create_unconfirmed", _unconfirmed_create, _nothing
    ),
    "refused by moderation": RefundCase(
        "something forbidden", "moderation_blocked", _moderate, _nothing
    ),
    "failed at the API": RefundCase("a calm lake", None, _fail_every_job, _heal_failures),
    "expired at the API": RefundCase("a calm lake", "expired", _expire_at_once, _keep_an_hour),
    "past its deadline": RefundCase("a calm lake", "deadline", _slow_past_deadline, _normal_speed),
}


@pytest.mark.parametrize("case", REFUND_CASES.values(), ids=REFUND_CASES.keys())
async def test_every_failure_is_refunded_and_a_delivery_is_settled(
    w: World, case: RefundCase
) -> None:
    # A budget of exactly one video: the second request is only admitted if the first was
    # refunded, and the third only refused if the second was settled.
    async with w.bot(quota_user_daily_dollars="0.40") as bot:
        case.break_(w, bot)
        failed = await video(w, case.prompt, w.user)
        assert accepted(failed)
        (job,) = await settled(bot)
        case.heal(w, bot)
        assert job.state == "failed"
        if case.code is not None:
            assert job.error_code == case.code
        entries = await bot.store.ledger_entries(job.id)
        assert [(e.reason, e.account, e.amount_micros) for e in entries] == [
            ("reserve", "held", COST),
            ("refund", "held", -COST),
        ]
        assert await bot.store.open_hold(job.id) == 0
        assert "$0.00 of $0.40 used" in await my_quota(w, w.user)

        second = await video(w, "a calm sea", w.user)
        assert accepted(second)
        (_, job2) = await all_jobs(bot.store)
        assert await bot.store.open_hold(job2.id) == COST
        assert (await bot.store.ledger_sum_by_job())[job2.id] == (COST, 0)
        await w.wait_for(lambda: has_video(second))
        await settled(bot)
        third = await video(w, "and one more", w.user)
        await assert_books_balance(bot.store)
    # The user was told the first failed, in the reply or a reply to it.
    told = [m for m in w.messages() if "Video failed" in text(m)]
    assert told
    assert video_attachment(told[0]) is None
    entries2 = [(e.reason, e.account, e.amount_micros) for e in await _entries(w, job2.id)]
    assert entries2 == [
        ("reserve", "held", COST),
        ("settle", "held", -COST),
        ("settle", "spent", COST),
    ]
    assert "24-hour budget is used up: $0.00 of $0.40 left" in text(refusal(third))


async def test_a_success_whose_video_expires_before_delivery_is_refunded(w: World) -> None:
    # The first download fails (a 500 and its two retries); by the next attempt, on restart,
    # the API has dropped the video: the member never got it, so nothing is charged.
    w.sim.inject("GET /videos/{id}/content", "500", times=3)
    async with w.bot(quota_user_daily_dollars="0.40") as bot:
        interaction = await video(w, "a sunset", w.user)

        async def finished() -> Job | None:
            job = await bot.store.get_job(1)
            return job if job is not None and job.state == "succeeded" else None

        await until(finished)
        w.sim.config.retention_seconds = 0.0

        async def attempted() -> bool:
            job = await bot.store.get_job(1)
            return job is not None and (job.delivery_attempts > 0 or job.delivery_state == "done")

        await until(attempted)
    async with w.bot(quota_user_daily_dollars="0.40") as bot:
        (job,) = await settled(bot)
        entries = [(e.reason, e.amount_micros) for e in await bot.store.ledger_entries(job.id)]
        quota = await my_quota(w, w.user)
    assert job.completed_at is not None  # it did succeed at the API
    assert (job.state, job.error_code, job.delivery_state) == ("failed", "expired", "done")
    assert entries == [("reserve", COST), ("refund", -COST)]
    assert "$0.00 of $0.40 used" in quota
    assert not has_video(interaction)
    told = "\n".join(text(m) for m in w.messages())
    assert "expired before it could be fetched. Nothing was charged." in told


async def test_an_ambiguous_create_that_did_start_is_charged_once(w: World) -> None:
    async with w.bot(quota_user_daily_dollars="0.40") as bot:
        w.sim.inject("POST /videos", "500_after_action", times=1)
        interaction = await video(w, "a quiet forest", w.user)
        await w.wait_for(lambda: has_video(interaction), timeout=30)
        (job,) = await settled(bot)
    assert creates(w) == 1
    assert len(w.sim.videos) == 1
    assert job.state == "succeeded"
    assert (await _ledger(w))[job.id] == (0, COST)


@dataclasses.dataclass
class Asked:
    kind: str
    user: User
    prompt: str
    cost: int
    interaction: Interaction


async def test_a_randomized_run_keeps_the_books_balanced_and_nobody_overspends(
    w: World,
) -> None:
    rng = random.Random(20_250_131)
    spenders = w.users[:4]
    unlucky = w.users[5]  # exempt: their creates meet the injected rate limits
    vip = w.fake.add_role(w.guild, "vip", 0)
    give_role(w, unlucky, vip)
    w.sim.config.moderation_word = "forbidden"
    w.sim.config.retry_after_seconds = 0.05
    combos = [
        ("sora-2", "4", "720x1280"),
        ("sora-2", "8", "1280x720"),
        ("sora-2", "12", "720x1280"),
        ("sora-2-pro", "4", "720x1280"),
    ]
    asked: list[Asked] = []
    async with w.bot(
        quota_user_daily_dollars="2.00",
        quota_exempt_role_ids=[vip.id],
        quota_max_active_per_user=20,
    ) as bot:
        for n in range(20):
            kind = rng.choices(
                ["ok", "moderated", "rate_limited", "invalid", "too_dear"],
                weights=[10, 4, 2, 2, 2],
            )[0]
            user = unlucky if kind == "rate_limited" else rng.choice(spenders)
            model, seconds, size = rng.choice(combos)
            prompt = f"take {n}" + (" forbidden" if kind == "moderated" else "")
            if kind == "invalid":
                model, size = "sora-2", "1792x1024"
            elif kind == "too_dear":
                model, seconds, size = "sora-2-pro", "12", "1792x1024"
            elif kind == "rate_limited":
                w.sim.inject("POST /videos", "429", times=3)
            cost = 0 if kind == "invalid" else bot.catalog.cost_micros(model, size, seconds)
            interaction = await video(w, prompt, user, model=model, seconds=seconds, size=size)
            asked.append(Asked(kind, user, prompt, cost, interaction))
        jobs = await settled(bot, timeout=120)
        await assert_books_balance(bot.store)
        balances = await bot.store.ledger_balances()
        for user in spenders:
            used = await bot.store.usage(user_id=user.id, since=0)
            assert used <= 2_000_000
            # /quota reports exactly what the ledger holds.
            assert f"{format_dollars(used)} of $2.00 used" in await my_quota(w, user)
    assert balances["held"] == 0
    assert balances["spent"] == sum(j.cost_micros for j in jobs if j.state == "succeeded")
    by_prompt = {j.prompt: j for j in jobs}
    assert len(by_prompt) == len(jobs)
    for a in asked:
        job = by_prompt.get(a.prompt)
        said = text(refusal(a.interaction))
        if a.kind == "invalid":
            assert job is None and "does not make 1792x1024" in said
        elif a.kind == "too_dear":
            assert job is None and "more than your whole 24-hour budget of $2.00" in said
        elif job is None:
            # Whether a moderated job was refunded before a later request is a matter of timing;
            # either way a refusal is the budget's.
            assert a.kind in ("ok", "moderated")
            assert "24-hour budget is used up" in said
        else:
            assert job.cost_micros == a.cost
            assert job.state == ("succeeded" if a.kind == "ok" else "failed"), (a, job)
    # The seed mixes every outcome, and someone asks for more than their budget.
    assert {a.kind for a in asked if by_prompt.get(a.prompt)} >= {"ok", "moderated", "rate_limited"}
    over = [
        u
        for u in spenders
        if sum(a.cost for a in asked if a.user is u and a.kind == "ok") > 2_000_000
    ]
    assert over
    for user in over:
        assert any(refusal(a.interaction) for a in asked if a.user is user and a.kind == "ok")
    # Every create the API accepted belongs to exactly one job; rate-limited ones made none.
    assert len(w.sim.videos) == sum(1 for j in jobs if j.api_video_id is not None)
    rate_limited = sum(1 for a in asked if a.kind == "rate_limited")
    assert creates(w) == len(w.sim.videos) + 3 * rate_limited


# ---------------------------------------------------------------------- roles and exemptions


async def test_role_overrides_exempt_roles_and_member_overrides(w: World) -> None:
    patrons = w.fake.add_role(w.guild, "patrons", 0)
    supporters = w.fake.add_role(w.guild, "supporters", 0)
    vip = w.fake.add_role(w.guild, "vip", 0)
    listed = w.fake.add_role(w.guild, "listed exempt", 0)
    u0, u1, u2, u3, u4, u5 = w.users
    give_role(w, u0, vip)
    give_role(w, u1, patrons)
    give_role(w, u2, patrons)
    give_role(w, u2, supporters)
    give_role(w, u4, patrons)
    give_role(w, u5, listed)
    admin = owner_of(w)
    async with w.bot(
        quota_user_daily_dollars="0.40",
        quota_cooldown_seconds=600,
        quota_exempt_role_ids=[listed.id],
        # The owner lets admins give more and exempt (the ceilings: tests/test_e2e_admin.py).
        admin_max_user_daily_dollars="1000",
        admin_may_exempt=True,
    ) as bot:
        saved = await command(
            w,
            "video-admin quota set",
            {"target": patrons, "limit": "daily", "dollars": "0.80"},
            admin,
        )
        assert "24-hour budget: $0.80" in text(saved)
        await command(
            w,
            "video-admin quota set",
            {"target": supporters, "limit": "daily", "dollars": "$1.20"},
            admin,
        )
        await command(
            w,
            "video-admin quota set",
            {"target": u4, "limit": "daily", "dollars": "0.40"},
            admin,
        )
        every = await command(
            w, "video-admin quota set", {"target": vip, "limit": "all", "exempt": True}, admin
        )
        for label in ("24-hour budget", "monthly budget", "videos in progress", "cooldown"):
            assert f"{label}" in text(every) and "exempt" in text(every)

        patron = await video(w, "patron", u1, seconds="8")  # $0.80 with the role
        both = await video(w, "both roles", u2, seconds="12")  # $1.20: the most generous
        plain = await video(w, "no role", u3, seconds="8")  # over $0.40
        own = await video(w, "own override", u4, seconds="8")  # own $0.40 beats the role
        listed_first = await video(w, "listed", u5, seconds="12")
        listed_again = await video(w, "listed again", u5, seconds="12")  # no cooldown either
        vip_first = await video(w, "vip", u0, seconds="12")
        vip_again = await video(w, "vip again", u0, seconds="12")
        u5_quota = await my_quota(w, u5)
        u2_quota = await my_quota(w, u2)
        shown = text(await command(w, "video-admin quota show", {"target": u4}, admin))
        role_shown = text(await command(w, "video-admin quota show", {"target": listed}, admin))

        reset = await command(w, "video-admin quota reset", {"target": patrons}, admin)
        u1_quota = await my_quota(w, u1)
        lifted = await command(
            w, "video-admin quota set", {"target": vip, "limit": "all", "exempt": False}, admin
        )
        vip_later = await video(w, "vip after", u0)
        await settled(bot)
        overrides = await bot.store.list_quota_overrides(w.guild.id)
    for admitted in (patron, both, listed_first, listed_again, vip_first, vip_again):
        assert accepted(admitted), text(refusal(admitted))
    assert "more than your whole 24-hour budget of $0.40" in text(refusal(plain))
    assert "more than your whole 24-hour budget of $0.40" in text(refusal(own))
    assert "no limit for you here" in u5_quota
    assert "$1.20 of $1.20 used" in u2_quota
    assert "24-hour budget: $0.40" in shown and "What applies to them now" in shown
    assert "$0.00 of $0.40 used" in shown
    assert "exempt from every per-member limit by the bot's settings" in role_shown
    assert "Removed 1 override" in text(reset)
    assert "$0.80 of $0.40 used · **$0.00 left**" in u1_quota
    assert "None: this server's defaults apply." in text(lifted)
    assert "24-hour budget is used up" in text(refusal(vip_later))
    assert {(o.target_kind, o.target_id) for o in overrides} == {
        ("role", supporters.id),
        ("user", u4.id),
    }


async def test_an_exempt_role_still_meets_the_bot_wide_cap(w: World) -> None:
    vip = w.fake.add_role(w.guild, "vip", 0)
    give_role(w, w.user, vip)
    async with w.bot(quota_bot_daily_dollars="1.00", quota_exempt_role_ids=[vip.id]) as bot:
        first = await video(w, "one", w.user, seconds="8")
        second = await video(w, "two", w.user, seconds="8")
        await settled(bot)
    assert accepted(first)
    said = text(refusal(second))
    assert "bot-wide daily spending cap is used up: $0.20 of $1.00 left" in said
    assert "It resets <t:" in said


# ---------------------------------------------------------------------- permissions


def leaf_commands(options: list[dict[str, Any]], prefix: str) -> set[str]:
    out: set[str] = set()
    for option in options:
        if option["type"] == 1:
            out.add(f"{prefix} {option['name']}")
        elif option["type"] == 2:
            out |= leaf_commands(option.get("options") or [], f"{prefix} {option['name']}")
    return out


async def test_video_admin_needs_manage_server_even_when_a_server_shows_it_to_everyone(
    w: World,
) -> None:
    member = w.users[1]
    managers = w.fake.add_role(w.guild, "managers", MANAGE_GUILD)
    manager = w.users[2]
    give_role(w, manager, managers)
    calls: dict[str, dict[str, Any]] = {
        "video-admin quota set": {"target": member, "limit": "daily", "dollars": "50"},
        "video-admin quota show": {"target": member},
        "video-admin quota reset": {"target": member},
        "video-admin usage": {},
        "video-admin settings show": {},
        "video-admin settings models": {"models": "sora-2"},
        "video-admin settings seconds": {"maximum": 4},
        "video-admin settings channels": {"action": "add", "channel": w.channel},
        "video-admin settings limits": {"daily": "100"},
        "video-admin audit": {},
    }
    async with w.bot() as bot:
        registered = w.fake.command("video-admin", guild=w.guild)
        assert registered is not None
        assert registered.raw["default_member_permissions"] == str(MANAGE_GUILD)
        assert registered.raw["dm_permission"] is False  # not in DMs
        assert leaf_commands(registered.options, "video-admin") == set(calls)
        # Hidden from a member without Manage Server...
        with pytest.raises(FakeDiscordError, match="lacks the permissions"):
            await w.fake.dispatch_slash("video-admin usage", {}, user=member, channel=w.channel)
        # ...until the server's admins show it to everyone (Server Settings > Integrations).
        registered.raw["default_member_permissions"] = None
        for name, options in calls.items():
            answer = await command(w, name, options, member)
            assert "You need the **Manage Server** permission" in text(answer), name
        assert await bot.store.list_quota_overrides(w.guild.id) == []
        assert await bot.store.all_guild_settings(w.guild.id) == {}
        assert await bot.store.count_audit(w.guild.id) == 0  # nothing was attempted
        # A member whose role has Manage Server may.
        saved = await command(w, "video-admin settings seconds", {"maximum": 8}, manager)
        assert "8 seconds" in text(saved)
        assert await bot.store.all_guild_settings(w.guild.id) != {}


async def test_admin_input_mistakes_are_explained_and_change_nothing(w: World) -> None:
    admin = owner_of(w)
    quota_set, me = "video-admin quota set", {"target": w.user}
    mistakes: list[tuple[str, dict[str, Any], str]] = [
        (quota_set, {**me, "limit": "daily", "dollars": "lots"}, "is not a dollar amount"),
        (quota_set, {**me, "limit": "daily", "dollars": "0.0000001"}, "six decimal places"),
        (quota_set, {**me, "limit": "active_jobs", "dollars": "3"}, "can only be exempted"),
        (quota_set, {**me, "limit": "daily"}, "Give an amount in dollars or exempt"),
        (quota_set, {**me, "limit": "all", "dollars": "3"}, "An amount is for one budget"),
        ("video-admin settings models", {"models": "sora-9"}, "Unknown model `sora-9`"),
        ("video-admin settings seconds", {"maximum": 2}, "the shortest is 4 seconds"),
        (
            "video-admin settings channels",
            {"action": "remove", "channel": w.channel},
            "is not on the list",
        ),
        ("video-admin settings channels", {"action": "add"}, "Choose the channel to add"),
        ("video-admin settings limits", {"daily": "-1"}, "zero or more"),
    ]
    async with w.bot() as bot:
        for name, options, expected in mistakes:
            said = text(await command(w, name, options, admin))
            assert expected in said, (name, options, said)
        assert await bot.store.list_quota_overrides(w.guild.id) == []
        assert await bot.store.all_guild_settings(w.guild.id) == {}


# ---------------------------------------------------------------------- the owners' cap


async def test_owners_set_the_bot_wide_cap_from_any_guild(w: World) -> None:
    owner, member = w.users[0], w.users[1]
    elsewhere = w.fake.add_guild("Elsewhere")
    far_channel = w.fake.add_text_channel(elsewhere, "lobby")
    w.fake.add_member(elsewhere, owner)  # a plain member there: no Manage Server
    async with w.bot(owner_ids=[owner.id], discord_guild_ids=[w.guild.id, elsewhere.id]) as bot:
        registered = w.fake.command("video-owner", guild=elsewhere)
        assert registered is not None and registered.raw["default_member_permissions"] is None
        with pytest.raises(FakeDiscordError, match="lacks the permissions"):
            await w.fake.dispatch_slash("video-admin usage", {}, user=owner, channel=far_channel)
        denied = await command(w, "video-owner cap", {"dollars": "0"}, member)
        assert "Only the bot's owners" in text(denied)
        assert await bot.quota.bot_daily_cap() == 10_000_000_000

        shown = await command(w, "video-owner cap", {"dollars": "0.50"}, owner, far_channel)
        assert "$0.00 of $0.50 used · **$0.50 left**" in text(shown)
        assert await bot.quota.bot_daily_cap() == 500_000
        dear = await video(w, "too dear for the bot", member, seconds="8")
        fits = await video(w, "fits", member)
        over = await video(w, "over", member)
        member_sees = await my_quota(w, member)

        await command(w, "video-owner cap", {"dollars": "0"}, owner, far_channel)
        paused = await video(w, "paused", member)
        back = await command(w, "video-owner cap", {"reset": True}, owner)
        await settled(bot)
    assert "more than the whole bot-wide daily spending cap of $0.50" in text(refusal(dear))
    assert accepted(fits)
    assert "bot-wide daily spending cap is used up: $0.10 of $0.50 left" in text(refusal(over))
    assert "$0.40 of $0.50 used" in member_sees
    assert "Video generation is paused" in text(refusal(paused))
    assert "$10000.00" in text(back)
    assert creates(w) == 1


# ---------------------------------------------------------------------- guild settings


async def test_a_guilds_settings_never_affect_another_guild(w: World) -> None:
    user = w.user
    other = w.fake.add_guild("Other Club")
    other_channel = w.fake.add_text_channel(other, "videos")
    w.fake.add_member(other, user)
    chat = w.fake.add_text_channel(w.guild, "chat")
    admin_a, admin_b = owner_of(w), owner_of(w, other)
    async with w.bot(discord_guild_ids=[w.guild.id, other.id]) as bot:
        changes: list[tuple[str, dict[str, Any]]] = [
            ("video-admin settings models", {"models": "sora-2-pro"}),
            ("video-admin settings seconds", {"maximum": 4}),
            ("video-admin settings channels", {"action": "add", "channel": chat}),
            ("video-admin settings limits", {"daily": "1.00", "cooldown": 60}),
            ("video-admin quota set", {"target": user, "limit": "monthly", "dollars": "0"}),
        ]
        for name, options in changes:
            await command(w, name, options, admin_a)
        shown_a = text(await command(w, "video-admin settings show", {}, admin_a))
        shown_b = text(await command(w, "video-admin settings show", {}, admin_b, other_channel))
        wrong_channel = await video(w, "here", user)
        wrong_model = await video(w, "model", user, chat, model="sora-2")
        too_long = await video(w, "long", user, chat, model="sora-2-pro", seconds="8")
        switched_off = await video(w, "off", user, chat, model="sora-2-pro")
        # The same member in the other guild: none of that applies.
        there = await video(w, "there", user, other_channel, seconds="8")
        quota_a = await my_quota(w, user, chat)
        quota_b = await my_quota(w, user, other_channel)
        await w.wait_for(lambda: has_video(there))
        usage_a = text(await command(w, "video-admin usage", {}, admin_a))
        usage_b = text(await command(w, "video-admin usage", {}, admin_b, other_channel))
        await settled(bot)
        assert await bot.store.all_guild_settings(other.id) == {}
        assert await bot.store.list_quota_overrides(other.id) == []
    assert "`sora-2-pro`" in shown_a and "All:" not in shown_a
    assert "4 seconds" in shown_a and f"<#{chat.id}>" in shown_a
    assert "24-hour budget: $1.00\n" in shown_a and "Cooldown between requests: 60 s" in shown_a
    assert "All: `sora-2`, `sora-2-pro`" in shown_b
    assert "Any length a model offers" in shown_b and "Every channel" in shown_b
    assert "24-hour budget: $1000.00 (bot default)" in shown_b
    assert f"Use it in: <#{chat.id}>" in text(refusal(wrong_channel))
    assert "Model `sora-2` isn't allowed in this server" in text(refusal(wrong_model))
    assert "at most 4 seconds; you asked for 8" in text(refusal(too_long))
    assert "switched off for you here" in text(refusal(switched_off))
    assert accepted(there)
    # A member's spending counts in every guild; the limits are each guild's own.
    assert "$0.80 of $0.00 used" in quota_a and "$0.80 of $1.00 used" in quota_a
    assert "$0.80 of $1000.00 used" in quota_b and "60 s" not in quota_b
    assert "Today (UTC)\n$0.00" in usage_a and "Nobody has spent anything." in usage_a
    assert "Today (UTC)\n$0.80" in usage_b and f"1. <@{user.id}> · $0.80" in usage_b
    assert creates(w) == 1


async def test_settings_can_be_changed_back(w: World) -> None:
    admin = owner_of(w)
    async with w.bot() as bot:
        await command(w, "video-admin settings models", {"models": "sora-2, sora-2-pro"}, admin)
        await command(
            w, "video-admin settings channels", {"action": "add", "channel": w.channel}, admin
        )
        await command(w, "video-admin settings seconds", {"maximum": 8}, admin)
        await command(w, "video-admin settings limits", {"monthly": "7", "active": 1}, admin)
        changed = await load(bot, w.guild)
        await command(w, "video-admin settings models", {"models": "all"}, admin)
        removed = await command(
            w, "video-admin settings channels", {"action": "remove", "channel": w.channel}, admin
        )
        await command(w, "video-admin settings seconds", {}, admin)
        await command(w, "video-admin settings limits", {"reset": True}, admin)
        back = await bot.store.all_guild_settings(w.guild.id)
        ok = await video(w, "fine again", w.user, seconds="12")
        await settled(bot)
    assert changed == {
        "video.allowed_models": ["sora-2", "sora-2-pro"],
        "video.channel_ids": [w.channel.id],
        "video.max_seconds": 8,
        "quota.monthly_micros": 7_000_000,
        "quota.max_active_per_user": 1,
    }
    assert "`/video` can be used in every channel" in text(removed)
    assert back == {}
    assert accepted(ok)


# ---------------------------------------------------------------------- plumbing


async def load(bot: VideoBot, guild: Guild) -> dict[str, Any]:
    return dict(await bot.store.all_guild_settings(guild.id))


async def _ledger(w: World) -> dict[int, Any]:
    async with await w.open_store() as store:
        return dict(await store.ledger_sum_by_job())


async def _entries(w: World, job_id: int) -> list[Any]:
    async with await w.open_store() as store:
        return await store.ledger_entries(job_id)
