"""The bot's promises under faults on both sides: every job's outcome reaches its member exactly
once, no request makes two jobs at the API, and the ledger balances.

The outage's length is `FAULT_OUTAGE_SECONDS` (default 8); the README shows the 5-minute run.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Job, Store
from tests.e2e import World, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.fakediscord.state import Message

# Each test takes tens of seconds: they start first when the suite runs with workers.
pytestmark = pytest.mark.long

JOBS = 100
USERS = 10
WEBHOOK_EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
CHANNEL_POST = "POST /channels/{channel_id}/messages"
FOOTER = re.compile(r"^job (\d+) ")


@pytest.fixture
async def w(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async with world(
        fake_discord,
        tmp_path,
        users=USERS,
        job_seconds=2.0,
        server_error_rate=0.2,
        server_error_after_action=0.5,
        rate_limit_rate=0.1,
        retry_after_seconds=0.2,
        seed=20261126,
    ) as env:
        env.settings_overrides.update(
            openai_max_retries=6,
            openai_timeout_seconds=3.0,
            create_grace_seconds=10.0,
        )
        yield env


def results_by_job(w: World) -> Counter[int]:
    """How many visible messages carry each job's outcome (an mp4, or a note that it failed)."""
    seen: Counter[int] = Counter()
    for message in w.messages():
        if message.deleted or message.ephemeral:
            continue
        ids = {
            int(a.filename.removeprefix("video-").removesuffix(".mp4"))
            for a in message.attachments
            if a.filename.startswith("video-") and a.filename.endswith(".mp4")
        }
        for embed in message.embeds:
            footer = FOOTER.match(str((embed.get("footer") or {}).get("text", "")))
            notes = [f for f in embed.get("fields", []) if f.get("name") == "Note"]
            if footer and notes and embed.get("title") == "Video failed":
                ids.add(int(footer.group(1)))
        seen.update(ids)
    return seen


async def wait_all_delivered(w: World, store: Store, count: int, limit: float) -> None:
    """Until no job is active or undelivered and `count` outcomes are visible."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        busy = await store.undelivered_jobs() or await store.active_jobs()
        if not busy and len(results_by_job(w)) >= count:
            return
        await asyncio.sleep(0.25)
    undelivered = await store.undelivered_jobs()
    active = await store.active_jobs()
    raise AssertionError(
        f"{len(undelivered)} undelivered, {len(active)} active, "
        f"{len(results_by_job(w))} outcomes visible; e.g. {(undelivered or active)[:2]}"
    )


def assert_exactly_once(w: World, jobs: list[Job]) -> None:
    seen = results_by_job(w)
    twice = {job_id: n for job_id, n in seen.items() if n > 1}
    assert twice == {}, f"results shown more than once: {twice}"
    missing = [j.id for j in jobs if seen[j.id] != 1]
    assert missing == [], f"jobs whose outcome never arrived: {missing}"
    # One request never makes two jobs at the API: every prompt here is unique.
    per_prompt = Counter(v.prompt for v in w.sim.videos.values())
    assert [p for p, n in per_prompt.items() if n > 1] == []


async def assert_ledger_balanced(store: Store, jobs: list[Job]) -> None:
    balances = await store.ledger_sum_by_job()
    for job in jobs:
        fresh = await store.get_job(job.id)
        assert fresh is not None
        balance = balances.get(job.id)
        held = balance.held if balance else 0
        spent = balance.spent if balance else 0
        assert held == 0, f"job {job.id} still holds {held}"
        expected = fresh.cost_micros if fresh.state == "succeeded" else 0
        assert spent == expected, f"job {job.id} ({fresh.state}) spent {spent}, cost {expected}"


async def dispatch_many(w: World, count: int) -> list[Interaction]:
    async def one(i: int) -> Interaction:
        return await w.fake.dispatch_slash(
            "video",
            {"prompt": f"fault run clip {i}"},
            user=w.users[i % USERS],
            channel=w.channel,
        )

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_a_hundred_jobs_under_faults_on_both_sides(w: World) -> None:
    w.fake.rate_limit(WEBHOOK_EDIT, remaining=20, reset_after=0.3, limit=20)
    w.fake.fail_next(WEBHOOK_EDIT, 503, times=5)
    w.fake.fail_next(CHANNEL_POST, 500, times=2)
    w.sim.inject("POST /videos", "hang_after_action", times=2)
    w.sim.inject("GET /videos", "drop", times=3)
    async with w.bot() as bot:
        interactions = await dispatch_many(w, JOBS)
        await w.wait_for(lambda: all(i.acknowledged for i in interactions), timeout=30)
        # A quarter of the way (a quarter of the outcomes shown), the gateway drops.
        await w.wait_for(lambda: len(results_by_job(w)) >= JOBS // 4, timeout=60)
        await w.fake.drop_gateway()
        # Half-way, sixteen minutes pass at Discord: every token is dead from here on.
        await w.wait_for(lambda: len(results_by_job(w)) >= JOBS // 2, timeout=60)
        w.fake.clock.advance(16 * 60)
        await wait_all_delivered(w, bot.store, JOBS, limit=150)
        jobs = [j for u in w.users for j in await bot.store.recent_jobs(u.id, 1000)]
        assert len(jobs) == JOBS
        assert_exactly_once(w, jobs)
        await assert_ledger_balanced(bot.store, jobs)
    assert all(i.response_type == 5 for i in interactions)
    succeeded = sum(1 for j in jobs if j.state == "succeeded")
    # Creates that failed before reaching the service are refunded; most jobs still succeed.
    assert succeeded >= JOBS * 0.6, succeeded


OUTAGE = float(os.environ.get("FAULT_OUTAGE_SECONDS", "8"))


async def test_while_the_video_service_is_down_jobs_wait_and_resume(w: World) -> None:
    w.sim.config.server_error_rate = 0.0
    w.sim.config.rate_limit_rate = 0.0
    w.sim.config.job_seconds = 3.0
    # The service refuses connections outright here: the few retries of the default setting
    # find that out as well as the many the 5xx tests need (each round waits for its retries).
    async with w.bot(openai_max_retries=2) as bot:
        first = await w.fake.dispatch_slash(
            "video", {"prompt": "before the outage"}, user=w.user, channel=w.channel
        )
        await w.wait_for(lambda: len(w.sim.videos) == 1)
        port = int(w.sim.base_url.rsplit(":", 1)[1].split("/")[0])
        await w.sim.stop()
        try:

            def waiting(message: Message | None) -> bool:
                return (
                    message is not None
                    and "waiting for the video service" in str(message.embed).lower()
                )

            await w.wait_for(lambda: waiting(first.original), timeout=30)
            # A request made during the outage is not failed: it waits too, sent once the
            # service answers again.
            during = await w.fake.dispatch_slash(
                "video", {"prompt": "during the outage"}, user=w.user, channel=w.channel
            )
            await w.wait_for(lambda: waiting(during.original), timeout=30)
            await asyncio.sleep(OUTAGE)
            assert waiting(first.original) and waiting(during.original)
        finally:
            await w.sim.start(port=port)

        def delivered(interaction: Interaction) -> bool:
            original = interaction.original
            return original is not None and any(
                a.filename.endswith(".mp4") for a in original.attachments
            )

        await w.wait_for(lambda: delivered(first) and delivered(during), timeout=90)
        jobs = await bot.store.recent_jobs(w.user.id, 10)
        assert sorted(j.state for j in jobs) == ["succeeded", "succeeded"]
        await assert_ledger_balanced(bot.store, jobs)
    creates = [r for r in w.sim.requests if r.method == "POST"]
    assert len(creates) == 2, "each request created exactly once"


async def test_ten_jobs_under_5xx_before_and_after_the_service_acts_and_429(w: World) -> None:
    """20 % 5xx (half of them after the service made the job) and 10 % 429 on every route: each
    of ten jobs is made once and delivered once. A create answered 5xx before the service acted
    is looked for and sent again within seconds, not refunded after a long grace period."""
    count = 10
    # Each kind of create failure happens at least once, whatever the random draws.
    w.sim.inject("POST /videos", "500")
    w.sim.inject("POST /videos", "500_after_action")
    w.sim.inject("POST /videos", "429")
    w.sim.inject("POST /videos", "503")
    # The default grace: a job must settle by being found or sent again, not by a refund.
    async with w.bot(video_api_profile="openai", create_grace_seconds=600.0) as bot:
        interactions = await dispatch_many(w, count)
        await w.wait_for(lambda: all(i.acknowledged for i in interactions), timeout=30)
        await wait_all_delivered(w, bot.store, count, limit=200)
        jobs = [j for u in w.users for j in await bot.store.recent_jobs(u.id, 100)]
        assert len(jobs) == count
        assert_exactly_once(w, jobs)
        await assert_ledger_balanced(bot.store, jobs)
    assert sorted(j.state for j in jobs) == ["succeeded"] * count
    videos = [m for m in w.messages() if any(a.filename.endswith(".mp4") for a in m.attachments)]
    assert len(videos) == count
    made = Counter(v.prompt for v in w.sim.videos.values())
    assert sorted(made.values()) == [1] * count, made
