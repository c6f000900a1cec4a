"""kill -9 at random moments: the bot runs as its own process (tests/botproc.py) against the fake
Discord and the simulator, which live in this test's process, on one SQLite file under tmp_path.
While a hundred /video requests arrive in waves from ten members, the process is SIGKILLed every
2-6 seconds and started again on the same database. Afterwards every job the bot recorded must
have reached its member exactly once, no request may have made two videos, no video may exist at
the service that no job owns, and the ledger must balance.

What the bot cannot be held to, and how each is checked:

- an interaction that never reached a running bot, or reached it but was killed before its defer
  reached Discord, is never acknowledged (the member sees "The application did not respond"):
  it must have left nothing behind (no job, no video, no charge, no message);
- an interaction acknowledged (deferred) whose job row was never written, because the kill came
  between the defer and the job's row, must have left nothing made or charged, and its member
  must be told so: the bot writes the request's intake row before it defers, so the next start
  answers it ("The bot restarted before your request was recorded ... nothing was charged").
  No acknowledged request may be left at "<bot> is thinking..." (Discord would show that until
  the token dies, 15 minutes later).

Knob: CRASH_SEED (schedule of waves and kills). Run with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.store import Job, Store
from tests.botproc import BotProcess
from tests.e2e import API_KEY, World, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.fakediscord.snowflake import snowflake_time
from tests.test_faults import assert_exactly_once, assert_ledger_balanced, wait_all_delivered

# About a minute: started first when the suite runs with workers.
pytestmark = pytest.mark.long

JOBS = 100
USERS = 10
KILLS = 8
JOB_SECONDS = 3.0
SEED = int(os.environ.get("CRASH_SEED", "20261127"))
# Discord's deadline for the first answer to an interaction.
CALLBACK_DEADLINE = 3.0


def prompt_of(n: int) -> str:
    return f"crash run clip {n}"


@dataclass
class Sent:
    """One /video as a member sent it: request number `n` (its prompt is `prompt_of(n)`)."""

    n: int
    interaction: Interaction


@dataclass
class Timeline:
    began: float = field(default_factory=time.monotonic)
    sent: list[Sent] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    aimed: int = 0
    dispatch_done: float | None = None

    def at(self) -> float:
        return time.monotonic() - self.began


async def send_requests(w: World, timeline: Timeline, wave: asyncio.Event) -> None:
    """A hundred /video in waves of 2-8 at once, a wave every 0.5-2.5 s, each wave only once the
    bot is connected (a kill can still land between that check and the dispatch)."""
    rng = random.Random(SEED)
    n = 0
    while n < JOBS:
        await w.fake.wait_until_connected(timeout=60)
        size = min(rng.randint(2, 8), JOBS - n)
        batch = list(range(n, n + size))
        n += size
        wave.set()
        got = await asyncio.gather(
            *(
                w.fake.dispatch_slash(
                    "video", {"prompt": prompt_of(i)}, user=w.users[i % USERS], channel=w.channel
                )
                for i in batch
            )
        )
        timeline.sent += [Sent(i, inter) for i, inter in zip(batch, got, strict=True)]
        await asyncio.sleep(rng.uniform(0.5, 2.5))
    timeline.dispatch_done = timeline.at()


async def kill_repeatedly(proc: BotProcess, timeline: Timeline, wave: asyncio.Event) -> None:
    """KILLS times: wait 2-6 s, SIGKILL, stay down 0-1 s, start again. Every other kill, while
    requests are still coming, is aimed at a wave (0-300 ms after it starts): the moments right
    after a request arrives (defer, reserve, create) are the ones most worth interrupting, and a
    uniformly random moment rarely lands in them."""
    rng = random.Random(SEED * 7 + 1)
    for k in range(KILLS):
        await asyncio.sleep(rng.uniform(2.0, 6.0))
        if k % 2 == 1 and timeline.dispatch_done is None:
            wave.clear()
            try:
                await asyncio.wait_for(wave.wait(), 5.0)
                # While the interactions go out (some are never answered), while their intakes
                # are written and their defers come back, or a little later.
                delays = (0.0, rng.uniform(0.0, 0.03), rng.uniform(0.03, 0.3))
                await asyncio.sleep(rng.choice(delays))
                timeline.aimed += 1
            except TimeoutError:
                pass
        await proc.kill()
        timeline.kills.append(timeline.at())
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        await proc.start()


async def all_jobs(store: Store, w: World) -> list[Job]:
    return [j for u in w.users for j in await store.recent_jobs(u.id, 10 * JOBS)]


def shown(s: Sent) -> str:
    """What the member sees of a request, for assertion messages."""
    i = s.interaction
    texts = [
        f"{m.content!r} {[e.get('title') or e.get('description') for e in m.embeds]}"
        + (" (deleted)" if m.deleted else "")
        for m in [*([i.original] if i.original else []), *i.followups]
    ]
    return f"request {s.n}: {i.state}; {texts}; errors {i.errors}"


def told_restart(s: Sent) -> bool:
    """Whether the reply says the request was cut off by a restart and nothing was charged."""
    original = s.interaction.original
    text = str(original.embeds).lower() if original is not None else ""
    return "restarted" in text and "nothing was charged" in text


def reached_the_bot(fake: FakeDiscord, interaction: Interaction) -> bool:
    """Whether INTERACTION_CREATE for it was written to some live bot connection."""
    wanted = str(interaction.id)
    return any(
        p.get("t") == "INTERACTION_CREATE" and (p.get("d") or {}).get("id") == wanted
        for conn in fake.gateway.connections
        for p in conn.sent
    )


async def test_sigkill_at_random_moments_loses_and_repeats_nothing(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    fake = fake_discord
    async with world(fake, tmp_path, users=USERS, job_seconds=JOB_SECONDS, fps=2, seed=SEED) as w:
        settings = w.settings(
            # At most ten jobs at the service at once: the rest wait in the local queue, which
            # must survive the kills too.
            quota_max_concurrent_jobs=10,
            # A create whose outcome a kill made unknown is looked for this long, then refunded.
            create_grace_seconds=10.0,
            openai_timeout_seconds=10.0,
        )
        async with BotProcess(fake, settings, tmp_path / "bot.log") as proc:
            await proc.start()
            store = await Store.open(w.data_dir / "bot.sqlite3")
            try:
                await run_and_check(w, proc, store)
            finally:
                await store.close()
            code = await proc.stop()
        log = proc.log_text()
        assert API_KEY not in log and fake.token not in log, "a secret reached the bot's log"
        assert code == 0, f"the last run did not stop cleanly on SIGINT (exit {code})"


async def run_and_check(w: World, proc: BotProcess, store: Store) -> None:
    """The run, its figures and every assertion about it."""
    fake = w.fake
    timeline = Timeline()
    wave = asyncio.Event()
    await asyncio.gather(
        send_requests(w, timeline, wave),
        kill_repeatedly(proc, timeline, wave),
    )
    # Every interaction is either answered by now or past the point where it could be.
    await fake.wait_for(
        lambda: all(
            s.interaction.acknowledged
            or fake.clock.now() - snowflake_time(s.interaction.id) > CALLBACK_DEADLINE + 0.5
            for s in timeline.sent
        ),
        timeout=15,
    )
    recorded = await all_jobs(store, w)
    await wait_all_delivered(w, store, len(recorded), limit=90)
    settled = timeline.at()
    jobs = await all_jobs(store, w)
    assert len(jobs) == len(recorded), "jobs appeared after the last request was answered"

    # ---------------------------------------------------------------- who is who
    sent = timeline.sent
    assert len(sent) == JOBS
    by_interaction = Counter(j.interaction_id for j in jobs)
    assert [i for i, n in by_interaction.items() if n > 1] == [], "one interaction, two jobs"
    job_of = {j.interaction_id: j for j in jobs}
    assert set(job_of) <= {s.interaction.id for s in sent}, "a job no interaction asked for"
    unacked = [s for s in sent if not s.interaction.acknowledged]
    orphans = [s for s in sent if s.interaction.acknowledged and s.interaction.id not in job_of]
    # Answered on the next start from the intake: "... nothing was charged; please send it again".
    told = [s for s in orphans if s.interaction.state == "responded" and told_restart(s)]
    stuck = [s for s in orphans if s not in told]
    made = Counter(v.prompt for v in w.sim.videos.values())

    # ---------------------------------------------------------------- figures (before any
    # assertion, so a failure shows them too)
    log = proc.log_text()
    errors = Counter(
        line.split(": ", 1)[-1][:120] for line in log.splitlines() if " ERROR " in line
    )
    # How long each recorded request spent between its defer reaching Discord and its job row:
    # the window in which only the intake row speaks for it (the fake's clock runs on real time,
    # like the bot's).
    window = sorted(
        job_of[s.interaction.id].created_at - (s.interaction.responded_at or 0.0)
        for s in sent
        if s.interaction.id in job_of
    )
    states = Counter(j.state for j in jobs)
    codes = Counter(j.error_code for j in jobs if j.state == "failed")
    never_reached = [s.n for s in unacked if not reached_the_bot(fake, s.interaction)]
    too_late = [s.n for s in unacked if any(c == 10062 for _, c in s.interaction.errors)]
    print(
        f"\ncrash run (seed {SEED}): {proc.kills} kills ({timeline.aimed} aimed at a wave) at "
        f"{', '.join(f'{t:.1f}' for t in timeline.kills)} s; {proc.starts} runs, started in "
        f"{min(proc.start_seconds):.2f}-{max(proc.start_seconds):.2f} s; requests sent by "
        f"{timeline.dispatch_done:.1f} s, all delivered by {settled:.1f} s\n"
        f"{len(sent)} requests: {len(jobs)} jobs ({dict(states)}; failures {dict(codes)}), "
        f"{len(unacked)} never acknowledged (never reached a live bot: {never_reached}; "
        f"answered too late: {too_late}; the rest reached a bot that was killed before "
        f"answering), {len(orphans)} acknowledged without a job: {len(told)} told after the "
        f"restart {[s.n for s in told]}, {len(stuck)} left at 'thinking...' "
        f"{[s.n for s in stuck]}\n"
        f"service: {len(w.sim.videos)} videos, {len(w.sim.requests)} requests; "
        f"{log.count('adopted video')} creates adopted after a kill, "
        f"{sum(1 for j in jobs if j.delivery_attempts > 1)} deliveries claimed more than once; "
        f"bot log errors: {dict(errors)}\n"
        f"defer -> job row: median {window[len(window) // 2] * 1000:.0f} ms, "
        f"max {window[-1] * 1000:.0f} ms"
    )

    # ---------------------------------------------------------------- every recorded job
    # Each outcome visible exactly once in the channel; no prompt created twice at the service.
    assert_exactly_once(w, jobs)
    await assert_ledger_balanced(store, jobs)
    balances = await store.ledger_balances()
    assert balances.get("held", 0) == 0, f"money still held: {balances}"
    assert balances.get("spent", 0) == sum(j.cost_micros for j in jobs if j.state == "succeeded")
    # No video at the service that no job owns (it would be paid for and never shown).
    owned = {j.api_video_id for j in jobs}
    assert [v.id for v in w.sim.videos.values() if v.id not in owned] == []
    # The outcome is in the member's own reply (tokens live for 15 minutes; the run is shorter).
    for s in sent:
        job = job_of.get(s.interaction.id)
        if job is None:
            continue
        original = s.interaction.original
        assert original is not None and not original.loading, f"job {job.id}: reply unresolved"
        assert original.author.id == fake.bot_user.id
        carried = any(a.filename == f"video-{job.id}.mp4" for a in original.attachments) or (
            job.state == "failed"
            and any(str(e.get("title")) == "Video failed" for e in original.embeds)
        )
        assert carried, f"job {job.id} ({job.state}): its reply does not carry its outcome"
        assert job.user_id == s.interaction.user.id
        assert job.prompt == prompt_of(s.n)

    # ---------------------------------------------------------------- never acknowledged
    # "The application did not respond": nothing may have been recorded, made, charged or shown.
    for s in unacked:
        i = s.interaction
        assert i.id not in job_of, f"request {s.n}: a job for an unanswered interaction"
        assert made[prompt_of(s.n)] == 0, f"request {s.n}: a video for an unanswered interaction"
        assert i.original is None and i.followups == []

    # ---------------------------------------------------------------- acknowledged, no job
    # The kill came between the defer and the job's row: nothing made or charged (there is no
    # job to charge), and the next start told the member so from the intake row written before
    # the defer. Nothing else may show, and no reply may be left at "thinking...".
    for s in orphans:
        assert made[prompt_of(s.n)] == 0, f"request {s.n}: a video without a job"
        assert s.interaction.followups == [], shown(s)
    assert stuck == [], f"acknowledged, never answered: {[shown(s) for s in stuck]}"
