"""Two bot processes, one database: each runs one of two shards of the fake Discord (tests/fleet.py)
with its own data folder and the same PostgreSQL, against one simulator.

- Two hundred /video arrive in waves through the guilds of both shards (jobs past CONCURRENT at
  the service, across both processes, wait in the shared queue). Midway, with deliveries under
  way on both, process 0 is SIGKILLed while three of its creates were carried out by the service
  but not yet answered, and while a wave of requests is being taken in. Afterwards every job
  either process recorded has reached its member exactly once, in its own reply (the dead one's
  taken over by the survivor once their leases ran out: creates found by listing, deliveries it
  had under way looked for before anything is sent), no prompt was created twice at the
  service, no video uploaded twice, the ledger balances, and every request process 0
  acknowledged but never recorded was answered by the survivor (nothing made or charged), none
  left at "thinking...". Interactions that never reached a live process must leave nothing.
- A burst against a limit, split across both processes: one member's daily budget through a guild
  on each shard, or the bot-wide daily cap, admits exactly as many jobs as it pays for.

Knob: FLEET_SEED (the waves' sizes and gaps). Run with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.store import Job, Store
from tests.fakediscord import FakeDiscord, Interaction
from tests.fleet import (
    VIDEO_FILE,
    Fleet,
    all_jobs,
    delivered_in_reply,
    fleet,
    held_by,
    reached_a_process,
    settle,
    told_nothing_charged,
    until,
)
from tests.test_e2e_quota import COST, accepted, has_video, refusal, resolved
from tests.test_faults import assert_ledger_balanced

JOBS = 200
USERS = 20
WAVE = (4, 10)
WAVE_GAP = (0.3, 0.7)
# Process 0 is killed once this many requests were sent and KILL_AFTER outcomes are visible.
KILL_AT = 110
KILL_AFTER = 60
# Creates of process 0 whose answers are held at the service when it dies.
HUNG = 3
# Jobs at the service at once, across both processes; the rest wait in the queue.
CONCURRENT = 40
JOB_SECONDS = 2.0
LEASE_SECONDS = 3.0
SEED = int(os.environ.get("FLEET_SEED", "20261130"))


# ---------------------------------------------------------------------- the kill run


def prompt_of(n: int) -> str:
    return f"fleet clip {n}"


@dataclass
class Sent:
    """Request `n` (prompt `prompt_of(n)`), sent through a guild on `shard`."""

    n: int
    shard: int
    interaction: Interaction

    def __repr__(self) -> str:
        # Short: the interaction's own repr holds its channel, whose messages hold theirs.
        return f"Sent({self.n}, shard {self.shard}, interaction {self.interaction.id})"


@dataclass
class Run:
    began: float = field(default_factory=time.monotonic)
    sent: list[Sent] = field(default_factory=list)
    # On the fake's clock (what its records are stamped with).
    killed_at: float | None = None
    killed_after: float | None = None
    delivered_at_kill: int = 0
    # Requests of the wave sent to shard 0 right before the kill.
    last_wave: list[int] = field(default_factory=list)
    # The jobs process 0 held (leased, still to be looked after) when it died, as the database
    # showed them right after the kill: the survivor's to finish.
    orphaned: list[Job] = field(default_factory=list)
    # After each wave: seconds since the start, requests sent, outcomes visible.
    progress: list[tuple[float, int, int]] = field(default_factory=list)
    dispatch_done: float | None = None

    def at(self) -> float:
        return time.monotonic() - self.began

    def __repr__(self) -> str:
        return f"Run({len(self.sent)} sent, killed after {self.killed_after} s)"


async def send_and_kill(f: Fleet, store: Store, run: Run) -> None:
    """Waves of 4-10 /video, alternately through shard 0's and shard 1's guilds, every 0.3-0.7 s
    (members and guilds in turn). Once KILL_AT were sent and KILL_AFTER outcomes are visible,
    process 0 is killed (see `kill_process_zero`); the rest go through shard 1's guilds only."""
    rng = random.Random(SEED)
    n = wave = 0

    async def send(shard: int, size: int) -> list[int]:
        nonlocal n
        spots = f.on_shard(shard)
        batch = list(range(n, min(n + size, JOBS)))
        n = batch[-1] + 1
        got = await asyncio.gather(
            *(
                f.fake.dispatch_slash(
                    "video",
                    {"prompt": prompt_of(i)},
                    user=f.users[i % USERS],
                    channel=spots[i % len(spots)].channel,
                )
                for i in batch
            )
        )
        run.sent += [Sent(i, shard, inter) for i, inter in zip(batch, got, strict=True)]
        run.progress.append((run.at(), n, len(f.outcomes())))
        return batch

    while n < JOBS:
        if run.killed_at is None and n >= KILL_AT:
            # Midway, with deliveries under way on both processes.
            await f.w.wait_for(lambda: len(f.outcomes()) >= KILL_AFTER, timeout=60)
            await kill_process_zero(f, store, run, send, rng)
        else:
            await send(wave % 2 if run.killed_at is None else 1, rng.randint(*WAVE))
            wave += 1
        await asyncio.sleep(rng.uniform(*WAVE_GAP))
    run.dispatch_done = run.at()


def made(f: Fleet, n: int) -> bool:
    """Whether the service has made request `n`'s video."""
    return f.made(prompt_of(n))


async def kill_process_zero(
    f: Fleet,
    store: Store,
    run: Run,
    send: Callable[[int, int], Awaitable[list[int]]],
    rng: random.Random,
) -> None:
    """SIGKILL process 0 at its two most delicate moments at once:

    - HUNG of its creates carried out by the service but not yet answered (the simulator holds
      their answers): the survivor must find those videos by listing, never create them again;
    - a wave of requests being taken in (the kill comes as the first is acknowledged):
      acknowledged ones not yet recorded must be answered by the survivor."""
    # Every create so far answered, and room at the service for the next waves without the
    # queue (whose jobs either process may send): only process 0's creates meet the held answers.
    await f.w.wait_for(
        lambda: f.hanging_creates() == 0 and all(made(f, s.n) for s in run.sent), timeout=30
    )
    await until(lambda: room_for(store, 3 * WAVE[1]), timeout=30)
    f.w.sim.inject("POST /videos", "hang_after_action", times=HUNG)
    hung = await send(0, HUNG + rng.randint(0, 3))
    await f.w.wait_for(
        lambda: f.hanging_creates() >= HUNG and sum(made(f, n) for n in hung) >= HUNG, timeout=30
    )
    # Process 0's name as a lease owner: the one on the jobs whose creates it sent.
    prompts = {prompt_of(n) for n in hung}
    owners = {j.lease_owner for j in await all_jobs(store, f.users) if j.prompt in prompts}
    assert len(owners) == 1 and None not in owners, f"the held creates' jobs: {owners}"
    batch = await send(0, rng.randint(*WAVE))
    # As soon as its first request is acknowledged: the others are being taken in, and the
    # acknowledged ones are not all recorded as jobs yet.
    wave = [s.interaction for s in run.sent[-len(batch) :]]
    await f.fake.wait_for(lambda: any(i.acknowledged for i in wave), timeout=30, poll=None)
    run.delivered_at_kill = len(f.outcomes())
    await f.procs[0].kill()
    run.killed_at = f.fake.clock.now()
    run.killed_after = run.at()
    run.last_wave = batch
    run.orphaned = await held_by(store, f.users, owners.pop())


async def room_for(store: Store, jobs: int) -> bool:
    return await store.count_working() + jobs <= CONCURRENT


def shown(s: Sent) -> str:
    i = s.interaction
    texts = [
        f"{m.content!r} {[e.get('title') or e.get('description') for e in m.embeds]}"
        + (" (deleted)" if m.deleted else "")
        for m in [*([i.original] if i.original else []), *i.followups]
    ]
    return f"request {s.n} (shard {s.shard}): {i.state}; {texts}; errors {i.errors}"


@pytest.mark.long
async def test_two_processes_on_postgres_one_killed_midway_lose_and_repeat_nothing(
    fake_discord: FakeDiscord, tmp_path: Path, pg_url: str
) -> None:
    async with fleet(
        fake_discord,
        tmp_path,
        database_url=pg_url,
        users=USERS,
        job_seconds=JOB_SECONDS,
        fps=2,
        seed=SEED,
    ) as f:
        f.settings_overrides.update(
            job_lease_seconds=LEASE_SECONDS,
            quota_max_active_per_user=USERS,
            # Jobs past this many at the service (across both processes) wait in the queue.
            quota_max_concurrent_jobs=CONCURRENT,
            # A create whose outcome the kill made unknown is looked for (listed) this long: well
            # past the two clean reads (10 s apart) that show a send started nothing, after which
            # it is sent again.
            create_grace_seconds=60.0,
            openai_timeout_seconds=5.0,
        )
        await asyncio.gather(f.process(0).start(), f.process(1).start())
        store = await f.open_store()
        try:
            await run_and_check(f, store)
        finally:
            await store.close()


async def run_and_check(f: Fleet, store: Store) -> None:
    fake, sim = f.fake, f.w.sim
    run = Run()
    await send_and_kill(f, store, run)
    jobs = await settle(f, store, [s.interaction for s in run.sent], limit=90)
    settled = run.at()
    killed_at = run.killed_at if run.killed_at is not None else float("inf")

    sent = run.sent
    job_of = {j.interaction_id: j for j in jobs}
    by_interaction = Counter(j.interaction_id for j in jobs)
    unacked = [s for s in sent if not s.interaction.acknowledged]
    orphans = [s for s in sent if s.interaction.acknowledged and s.interaction.id not in job_of]
    told = [s for s in orphans if told_nothing_charged(s.interaction)]
    stuck = [s for s in orphans if s not in told]
    outcomes = f.outcomes()
    uploads = f.uploads()
    made = Counter(v.prompt for v in sim.videos.values())
    # When each job's mp4 was first accepted by Discord (the fake's clock).
    upload_at: dict[int, float] = {}
    for record in sorted(fake.requests, key=lambda r: r.at):
        for upload in record.files:
            m = VIDEO_FILE.match(upload.filename)
            if m is not None and 200 <= record.status < 300:
                upload_at.setdefault(int(m.group(1)), record.at)
    # What the jobs process 0 held at its death were doing, and when the survivor delivered them.
    doing = Counter(
        "create in flight"
        if j.state == "creating" and j.create_attempted_at and not j.api_video_id
        else f"{j.state}/{j.delivery_state}"
        for j in run.orphaned
    )
    after_kill = sorted(upload_at.get(j.id, float("inf")) - killed_at for j in run.orphaned)
    states = Counter(j.state for j in jobs)
    survivor_log = f.procs[1].log_text()
    errors = Counter(
        line.split(": ", 1)[-1][:120] for line in survivor_log.splitlines() if " ERROR " in line
    )
    print(
        f"\nfleet run (seed {SEED}): {len(sent)} requests sent by {run.dispatch_done or 0:.1f} s; "
        f"process 0 killed at {run.killed_after or 0:.1f} s with {run.delivered_at_kill} outcomes "
        f"visible (last wave to it: {run.last_wave}); all settled by {settled:.1f} s\n"
        f"{len(jobs)} jobs ({dict(states)}), {len(unacked)} never acknowledged "
        f"({[s.n for s in unacked]}; reached a process: "
        f"{[s.n for s in unacked if reached_a_process(f, s.interaction)]}), "
        f"{len(orphans)} acknowledged without a job: {len(told)} told "
        f"{[s.n for s in told]}, {len(stuck)} not {[s.n for s in stuck]}\n"
        f"process 0 held {len(run.orphaned)} jobs at its death ({dict(doing)}), delivered by "
        f"the survivor {after_kill[0] if after_kill else 0:.1f}-"
        f"{after_kill[-1] if after_kill else 0:.1f} s after the "
        f"kill (lease {LEASE_SECONDS} s); service: {len(sim.videos)} videos; uploads repeated: "
        f"{ {j: k for j, k in uploads.items() if k > 1} }; survivor's log errors: {dict(errors)}\n"
        f"waves (s, sent, outcomes): {[(round(t, 1), k, o) for t, k, o in run.progress]}"
    )

    assert run.killed_at is not None, "the run ended before process 0 was killed"

    # ---------------------------------------------------------------- every recorded job
    assert [i for i, k in by_interaction.items() if k > 1] == [], "one interaction, two jobs"
    assert set(job_of) <= {s.interaction.id for s in sent}, "a job no interaction asked for"
    twice = {j: k for j, k in outcomes.items() if k > 1}
    assert twice == {}, f"outcomes shown more than once: {twice}"
    # Not even sent twice into the same reply (a delivery process 0 had under way is looked for
    # in the reply before the survivor sends anything).
    assert {j: k for j, k in uploads.items() if k > 1} == {}, "a video uploaded twice"
    assert set(outcomes) <= {j.id for j in jobs}, "an outcome for a job nobody recorded"
    assert [j.id for j in jobs if outcomes[j.id] != 1] == [], "jobs whose outcome never arrived"
    # No faults were injected: the kill alone must not fail a job.
    assert dict(states) == {"succeeded": len(jobs)}, [
        (j.id, j.state, j.error_code) for j in jobs if j.state != "succeeded"
    ]
    # No prompt created twice (a create whose answer died with process 0 was found by listing,
    # not sent again), and no video at the service that no job owns.
    assert [p for p, k in made.items() if k > 1] == [], "a prompt created twice"
    owned = {j.api_video_id for j in jobs}
    assert [v.id for v in sim.videos.values() if v.id not in owned] == []
    for s in sent:
        job = job_of.get(s.interaction.id)
        if job is None:
            continue
        assert job.prompt == prompt_of(s.n) and job.user_id == s.interaction.user.id
        assert delivered_in_reply(s.interaction) == job.id, f"job {job.id}: {shown(s)}"

    # ---------------------------------------------------------------- the ledger
    await assert_ledger_balanced(store, jobs)
    balances = await store.ledger_balances()
    assert balances.get("held", 0) == 0, f"money still held: {balances}"
    assert balances.get("spent", 0) == sum(j.cost_micros for j in jobs)

    # ---------------------------------------------------------------- the takeover happened
    # Process 0 held jobs under way when it died (the survivor's to finish, checked above with
    # every job): the run tested a takeover, not only a kill.
    assert run.orphaned, "process 0 held no job when it died: the kill came too late"
    # Some had a create the service carried out whose answer died with process 0.
    assert doing["create in flight"] >= 1, f"no create in flight at the kill: {dict(doing)}"

    # ---------------------------------------------------------------- never acknowledged
    for s in unacked:
        assert s.shard == 0 and s.n in run.last_wave, f"unanswered, not at the kill: {shown(s)}"
        assert made[prompt_of(s.n)] == 0, f"request {s.n}: a video for an unanswered interaction"
        assert s.interaction.original is None and s.interaction.followups == []

    # ---------------------------------------------------------------- acknowledged, no job
    for s in orphans:
        assert s.shard == 0, f"process 1 acknowledged a request and recorded no job: {shown(s)}"
        assert made[prompt_of(s.n)] == 0, f"request {s.n}: a video without a job"
    assert stuck == [], f"acknowledged, never answered: {[shown(s) for s in stuck]}"


# ---------------------------------------------------------------------- limits across processes

BURST = 16


@pytest.mark.parametrize(
    ("limit", "members", "admitted"),
    [
        # One member's 24-hour budget pays for three: half the burst through each shard's guild.
        ({"quota_user_daily_dollars": "1.20"}, 1, 3),
        # The bot-wide daily cap pays for five, whoever asks.
        ({"quota_bot_daily_dollars": "2.00"}, 4, 5),
    ],
    ids=["member-budget", "bot-cap"],
)
async def test_a_burst_split_across_two_processes_admits_what_the_limit_pays_for(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    pg_url: str,
    limit: dict[str, Any],
    members: int,
    admitted: int,
) -> None:
    async with fleet(
        fake_discord, tmp_path, database_url=pg_url, users=members, guilds_per_shard=1
    ) as f:
        f.settings_overrides.update(limit, quota_max_active_per_user=BURST)
        await asyncio.gather(f.process(0).start(), f.process(1).start())
        spots = [f.on_shard(0)[0], f.on_shard(1)[0]]
        interactions = await asyncio.gather(
            *(
                f.fake.dispatch_slash(
                    "video",
                    {"prompt": f"budget clip {i}"},
                    user=f.users[i % members],
                    channel=spots[i % 2].channel,
                )
                for i in range(BURST)
            )
        )
        await f.w.wait_for(lambda: all(resolved(i) for i in interactions), timeout=60)
        yes = [i for i in interactions if accepted(i)]
        no = [i for i in interactions if refusal(i) is not None]
        await f.w.wait_for(lambda: all(has_video(i) for i in yes), timeout=60)
        store = await f.open_store()
        try:
            jobs = await all_jobs(store, f.users)
            await assert_ledger_balanced(store, jobs)
            balances = await store.ledger_balances()
        finally:
            await store.close()
    assert (len(yes), len(no)) == (admitted, BURST - admitted)
    assert len(jobs) == admitted and len(f.w.sim.videos) == admitted
    # Both processes took part: each answered the half sent through its own shard's guild.
    for shard in (0, 1):
        assert all(i.acknowledged for i in interactions[shard::2])
    assert balances.get("held", 0) == 0
    assert balances.get("spent", 0) == admitted * COST
