"""Several bot processes against one fake Discord, one simulator and one database: the harness of
tests/test_fleet.py.

Each process is the real bot in a child process (`tests.botproc.BotProcess`) running one shard of
`SHARDS`, with its own data folder and the same `DATABASE_URL`. The fake Discord gives each shard
only its own guilds (`(guild_id >> 22) % SHARDS`) and sends a guild's interactions over its shard's
connection, so each process answers the interactions of its own guilds, as with real Discord.
The fake and the simulator stay in the test's event loop; what the test checks is what they saw
(messages, uploads, creates) and what the shared database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.settings import Settings
from bot.store import Job, Store
from tests.botproc import BotProcess, BotProcessError
from tests.e2e import World, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.fakediscord.snowflake import DISCORD_EPOCH_MS, snowflake_time
from tests.fakediscord.state import Channel, Guild, Message, User

SHARDS = 2
VIDEO_FILE = re.compile(r"^video-(\d+)\.mp4$")
FOOTER = re.compile(r"^job (\d+) ")
# Discord's deadline for the first answer to an interaction.
CALLBACK_DEADLINE = 3.0


def shard_of(guild_id: int, count: int = SHARDS) -> int:
    """Discord's rule: a guild's shard is its id's creation millisecond modulo the count."""
    return (guild_id >> 22) % count


@dataclass(frozen=True)
class Spot:
    """A text channel in a guild, and the shard (so the process) its interactions go to."""

    guild: Guild
    channel: Channel
    shard: int

    def __repr__(self) -> str:
        # Short: a guild's and a channel's own reprs hold every member and message.
        return f"Spot(guild {self.guild.id}, channel {self.channel.id}, shard {self.shard})"


def add_guild_on_shard(fake: FakeDiscord, shard: int, name: str, owner: User) -> Guild:
    """A new guild whose id lands on `shard`: the fake's clock is moved on until the next
    snowflake's millisecond does (the fake makes every id from that clock)."""
    for _ in range(100):
        now_ms = fake.clock.now() * 1000 - DISCORD_EPOCH_MS
        # The middle of the next millisecond on that shard.
        target = int(now_ms) + 1
        target += (shard - target) % SHARDS
        fake.clock.advance((target + 0.5 - now_ms) / 1000)
        guild = fake.add_guild(name, owner=owner)
        if shard_of(guild.id) == shard:
            return guild
        # Real time moved the millisecond on between the two reads: forget this one (no bot is
        # connected yet, so nobody has seen it).
        fake.guilds.remove(guild)
    raise AssertionError(f"no guild id landed on shard {shard}")


@dataclass
class Fleet:
    """The world several bot processes share, and the processes (one per shard)."""

    w: World
    spots: list[Spot]
    tmp: Path
    database_url: str | None
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    procs: dict[int, BotProcess] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Short (pytest shows it when an assertion names it): the world's repr holds everything.
        return f"Fleet({len(self.spots)} guilds, processes {sorted(self.procs)})"

    @property
    def fake(self) -> FakeDiscord:
        return self.w.fake

    @property
    def users(self) -> list[User]:
        return self.w.users

    def on_shard(self, shard: int) -> list[Spot]:
        return [s for s in self.spots if s.shard == shard]

    def data_dir(self, shard: int) -> Path:
        return self.tmp / f"data-{shard}"

    def settings(self, shard: int, **overrides: Any) -> Settings:
        """Shard `shard` of `SHARDS`, its own data folder, the shared database, every guild."""
        values: dict[str, Any] = {
            "data_dir": self.data_dir(shard),
            "shard_count": SHARDS,
            "shard_ids": [shard],
            "discord_guild_ids": [s.guild.id for s in self.spots],
            **self.settings_overrides,
            **overrides,
        }
        if self.database_url is not None:
            values["database_url"] = self.database_url
        return self.w.settings(**values)

    def process(self, shard: int, **overrides: Any) -> BotProcess:
        self.data_dir(shard).mkdir(exist_ok=True)
        proc = BotProcess(
            self.fake,
            self.settings(shard, **overrides),
            self.tmp / f"bot-{shard}.log",
            shard=shard,
            connect_timeout=60.0,
        )
        self.procs[shard] = proc
        return proc

    async def open_store(self) -> Store:
        """The database the processes share, opened by the test (as one more client of it)."""
        if self.database_url is not None:
            return await Store.open(self.database_url)
        return await Store.open(self.data_dir(0) / "bot.sqlite3")

    # ------------------------------------------------------------------ what the fake saw

    def channel_messages(self) -> list[Message]:
        return [
            m
            for spot in self.spots
            for m in self.fake.channel_messages(spot.channel, include_ephemeral=True)
        ]

    def outcomes(self) -> Counter[int]:
        """How many visible public messages carry each job's outcome (its mp4, or the note that it
        failed), across every channel of every guild."""
        seen: Counter[int] = Counter()
        for message in self.channel_messages():
            if message.deleted or message.ephemeral:
                continue
            ids = {
                int(m.group(1))
                for a in message.attachments
                if (m := VIDEO_FILE.match(a.filename)) is not None
            }
            for embed in message.embeds:
                footer = FOOTER.match(str((embed.get("footer") or {}).get("text", "")))
                if footer and embed.get("title") == "Video failed":
                    ids.add(int(footer.group(1)))
            seen.update(ids)
        return seen

    def uploads(self) -> Counter[int]:
        """How many requests Discord accepted that uploaded each job's mp4 (a repeated upload
        that replaced the same reply's file is not visible twice, but it is here)."""
        sent: Counter[int] = Counter()
        for record in self.fake.requests:
            if not 200 <= record.status < 300:
                continue
            for upload in record.files:
                m = VIDEO_FILE.match(upload.filename)
                if m is not None:
                    sent[int(m.group(1))] += 1
        return sent

    def hanging_creates(self) -> int:
        """Creates the service has not answered yet (in progress, or held)."""
        return sum(1 for r in self.w.sim.requests if r.route == "POST /videos" and r.status is None)

    def made(self, prompt: str) -> bool:
        """Whether the service has made a video for `prompt`."""
        return any(v.prompt == prompt for v in self.w.sim.videos.values())

    def logs(self) -> str:
        return "\n".join(p.describe() for p in self.procs.values())


def delivered_in_reply(interaction: Interaction) -> int | None:
    """The job whose mp4 the interaction's own reply carries, if any."""
    original = interaction.original
    if original is None or original.deleted:
        return None
    for attachment in original.attachments:
        m = VIDEO_FILE.match(attachment.filename)
        if m is not None:
            return int(m.group(1))
    return None


def told_nothing_charged(interaction: Interaction) -> bool:
    """Whether the reply says the request was lost before it was recorded, and nothing charged."""
    original = interaction.original
    if original is None or original.loading:
        return False
    words = f"{original.content} {original.embeds}".lower()
    return "nothing was charged" in words


async def all_jobs(store: Store, users: Iterable[User], per_user: int = 10_000) -> list[Job]:
    return [j for u in users for j in await store.recent_jobs(u.id, per_user)]


@contextlib.asynccontextmanager
async def fleet(
    fake: FakeDiscord,
    tmp_path: Path,
    *,
    database_url: str | None,
    users: int = 10,
    guilds_per_shard: int = 2,
    **sim_config: Any,
) -> AsyncIterator[Fleet]:
    """A simulator, `guilds_per_shard` guilds on each shard (one channel each, every member in
    every guild) and a fleet whose processes the test starts; every process still running is
    stopped (SIGINT) when the block ends, and their logs' tails are printed when it fails."""
    async with world(fake, tmp_path, users=users, **sim_config) as w:
        owner = fake.add_user("fleet-owner")
        spots = [Spot(w.guild, w.channel, shard_of(w.guild.id))]
        for shard in range(SHARDS):
            n = len([s for s in spots if s.shard == shard])
            for k in range(n, guilds_per_shard):
                guild = add_guild_on_shard(fake, shard, f"Shard {shard} Club {k}", owner)
                for user in w.users:
                    fake.add_member(guild, user)
                spots.append(Spot(guild, fake.add_text_channel(guild, "videos"), shard))
        f = Fleet(w, spots, tmp_path, database_url)
        try:
            yield f
        except BaseException as exc:
            if not isinstance(exc, BotProcessError):
                print(f.logs())
            raise
        finally:
            for proc in f.procs.values():
                await proc.stop()


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:  # noqa: ASYNC109
    """Wait for a condition on the shared database (which the fake cannot see)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def held_by(store: Store, users: list[User], owner: str | None) -> list[Job]:
    """The jobs `owner` holds that still need a process: active, or not yet delivered."""
    return [
        j
        for j in await all_jobs(store, users)
        if j.lease_owner == owner and (j.active or j.delivery_state != "done")
    ]


def reached_a_process(f: Fleet, interaction: Interaction) -> bool:
    """Whether INTERACTION_CREATE for it was written to some bot connection."""
    wanted = str(interaction.id)
    return any(
        p.get("t") == "INTERACTION_CREATE" and (p.get("d") or {}).get("id") == wanted
        for conn in f.fake.gateway.connections
        for p in conn.sent
    )


async def settle(f: Fleet, store: Store, sent: list[Interaction], limit: float) -> list[Job]:
    """Until every interaction in `sent` is answered (or past the point where it could be), no
    job is active or undelivered, and every recorded job's outcome is visible; returns the
    jobs."""
    fake = f.fake
    await fake.wait_for(
        lambda: all(
            i.acknowledged or fake.clock.now() - snowflake_time(i.id) > CALLBACK_DEADLINE + 0.5
            for i in sent
        ),
        timeout=30,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        jobs = await all_jobs(store, f.users)
        busy = await store.undelivered_jobs() or await store.active_jobs()
        seen = f.outcomes()
        if not busy and all(seen[j.id] for j in jobs):
            return jobs
        if loop.time() > deadline:
            undelivered = await store.undelivered_jobs()
            active = await store.active_jobs()
            missing = [j.id for j in jobs if not seen[j.id]]
            raise AssertionError(
                f"not settled within {limit}s: {len(undelivered)} undelivered, {len(active)} "
                f"active, {len(missing)} of {len(jobs)} jobs without a visible outcome "
                f"{missing[:20]}; e.g. {(undelivered or active)[:2]}"
            )
        await asyncio.sleep(0.25)
