"""Shards end to end: the bot runs the shards SHARD_IDS of SHARD_COUNT against the fake Discord,
which gives each shard only its own guilds (`(guild_id >> 22) % count`) and sends a guild's
interactions over its shard's connection; each `/video` is answered and delivered once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.fakediscord.state import Channel, Guild

SHARDS = 2


def shard_of(guild: Guild) -> int:
    return (guild.id >> 22) % SHARDS


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url) as env:
        yield env


def channel_on_shard(w: World, shard: int) -> Channel:
    """A channel in a guild on `shard`: World's own guild, or a new one whose snowflake lands
    there (a guild's shard is its id's creation millisecond modulo the count)."""
    if shard_of(w.guild) == shard:
        return w.channel
    for _ in range(100):
        w.fake.clock.advance(0.001)
        guild = w.fake.add_guild(f"Shard {shard} Club")
        if shard_of(guild) == shard:
            w.fake.add_member(guild, w.user)
            return w.fake.add_text_channel(guild, "videos")
    raise AssertionError(f"no guild id landed on shard {shard}")


def interaction_ids_sent(w: World, shard: int) -> set[str]:
    session = w.fake.gateway.shards[shard]
    assert session.conn is not None
    return {str(p["d"]["id"]) for p in session.conn.sent if p.get("t") == "INTERACTION_CREATE"}


def videos_for(w: World, interaction: Interaction) -> int:
    """How many messages carry this interaction's video: its reply, or posts in its channel."""
    messages = w.fake.channel_messages(interaction.channel, include_ephemeral=True)
    return sum(1 for m in messages if video_attachment(m))


async def test_each_shard_answers_and_delivers_its_own_guilds_video_once(w: World) -> None:
    channels = [channel_on_shard(w, shard) for shard in range(SHARDS)]
    guild_ids = [c.guild.id for c in channels if c.guild is not None]
    async with w.bot(shard_count=SHARDS, shard_ids=[0, 1], discord_guild_ids=guild_ids) as bot:
        await w.wait_for(lambda: all(w.fake.gateway.shard_live(s) for s in range(SHARDS)))
        await w.wait_for(lambda: all(bot.get_guild(g) is not None for g in guild_ids))
        for shard, gid in enumerate(guild_ids):
            guild = bot.get_guild(gid)
            assert guild is not None and guild.shard_id == shard
        interactions = [
            await w.fake.dispatch_slash(
                "video", {"prompt": f"a fox on shard {shard}"}, user=w.user, channel=channel
            )
            for shard, channel in enumerate(channels)
        ]
        await w.wait_for(lambda: all(videos_for(w, i) for i in interactions))
        # Each interaction reached the bot over its own guild's shard, and only that one.
        for shard, interaction in enumerate(interactions):
            assert str(interaction.id) in interaction_ids_sent(w, shard)
            assert str(interaction.id) not in interaction_ids_sent(w, 1 - shard)
    for interaction in interactions:
        assert interaction.acknowledged
        assert videos_for(w, interaction) == 1
    assert len([r for r in w.sim.requests if r.method == "POST"]) == 2


async def test_a_process_running_one_shard_sees_only_that_shards_guilds(w: World) -> None:
    elsewhere, mine = (channel_on_shard(w, shard) for shard in range(SHARDS))
    assert elsewhere.guild is not None and mine.guild is not None
    other_id, my_id = elsewhere.guild.id, mine.guild.id
    async with w.bot(shard_count=SHARDS, shard_ids=[1], discord_guild_ids=[other_id, my_id]) as bot:
        assert set(w.fake.gateway.shards) == {1}
        await w.wait_for(lambda: bot.get_guild(my_id) is not None)
        assert bot.get_guild(other_id) is None
        # Shard 0's process (not running) would get this one; this process never does.
        missed = await w.fake.dispatch_slash(
            "video", {"prompt": "a fox elsewhere"}, user=w.user, channel=elsewhere
        )
        answered = await w.fake.dispatch_slash(
            "video", {"prompt": "a fox here"}, user=w.user, channel=mine
        )
        await w.wait_for(lambda: videos_for(w, answered))
        assert interaction_ids_sent(w, 1) == {str(answered.id)}
    assert not missed.acknowledged and missed.original is None
    assert videos_for(w, missed) == 0
    assert len([r for r in w.sim.requests if r.method == "POST"]) == 1
