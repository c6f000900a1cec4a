"""The whole bot, end to end: the real `VideoBot` on discord.py against the fake Discord, the
simulated Videos API over loopback, and a real database (the SQLite file under the data folder,
or a PostgreSQL database: the `database_url` fixture). Shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from bot.services import DATABASE_NAME
from bot.settings import Settings
from bot.sim import SimConfig, SimServer
from bot.store import Store
from bot.store.pgconn import numbered
from discordbot.client import VideoBot
from tests.fakediscord import FakeDiscord
from tests.fakediscord.fixture import running
from tests.fakediscord.state import Channel, Guild, Message, User

API_KEY = "sk-e2e-secret-key-0123456789"


@dataclass
class World:
    """One guild with a channel and a few members, a simulator and a data directory."""

    fake: FakeDiscord
    sim: SimServer
    data_dir: Path
    guild: Guild
    channel: Channel
    users: list[User]
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    # DATABASE_URL; None: the default, a SQLite file in data_dir.
    database_url: str | None = None

    @property
    def user(self) -> User:
        return self.users[0]

    @property
    def database(self) -> Path | str:
        """The database the bot uses, for a test to open a store of its own on."""
        return self.database_url or self.data_dir / DATABASE_NAME

    async def open_store(self) -> Store:
        return await Store.open(self.database)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """What the bot's database holds, committed, read now on a connection of the test's own:
        at once, so a `wait_for` predicate or an observer of the fake can look. (`?` placeholders,
        as in the store.)"""
        if self.database_url is None:
            path = self.data_dir / DATABASE_NAME
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as raw:
                return [tuple(row) for row in raw.execute(sql, params).fetchall()]
        url = self.database_url

        async def read() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(url)
            try:
                return [tuple(row) for row in await conn.fetch(numbered(sql), *params)]
            finally:
                await conn.close()

        # A loop of its own in another thread: the caller cannot await (and holds this one).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, read()).result()

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "discord_token": SecretStr(self.fake.token),
            "discord_guild_ids": [self.guild.id],
            "openai_api_key": SecretStr(API_KEY),
            "openai_base_url": self.sim.base_url,
            # Named, so the bot does not probe the simulator at start (tests that count its
            # requests expect none); tests of `auto` say so.
            "video_api_profile": self.sim.config.profile,
            "data_dir": self.data_dir,
            **({"database_url": SecretStr(self.database_url)} if self.database_url else {}),
            "poll_interval_seconds": 1.0,
            "openai_max_retries": 2,
            "openai_requests_per_minute": 6000,
            # Generous limits unless a test is about limits: these tests are about delivery.
            "quota_user_daily_dollars": "1000",
            "quota_user_monthly_dollars": "1000",
            "quota_bot_daily_dollars": "10000",
            "quota_max_active_per_user": 10,
            "quota_cooldown_seconds": 0,
            "quota_max_concurrent_jobs": 50,
            **self.settings_overrides,
            **overrides,
        }
        # `_env_file=None`: a developer's .env must not change what the tests run.
        return Settings(_env_file=None, **values)

    @contextlib.asynccontextmanager
    async def bot(self, **overrides: Any) -> AsyncIterator[VideoBot]:
        bot = FakeGatewayBot(self.settings(**overrides))
        async with running(bot, self.fake, timeout=20):
            yield bot

    def delivery_recorded(self, job_id: int) -> bool:
        """Whether the job's delivery is recorded (and so settled): its reply reaches Discord a
        moment before that, and a bot stopped in between records it at its next start."""
        return self.rows("SELECT delivery_state FROM jobs WHERE id = ?", (job_id,)) == [("done",)]

    def messages(self, channel: Channel | None = None) -> list[Message]:
        return self.fake.channel_messages(channel or self.channel, include_ephemeral=True)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:  # noqa: ASYNC109
        return await self.fake.wait_for(predicate, timeout=timeout, poll=0.05)


class FakeGatewayBot(VideoBot):
    """The real bot, but a forced re-identify does not wait: it costs discord.py 5 real seconds,
    and the fake gateway never rate limits it."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


async def tracker_rounds(bot: VideoBot, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Until the bot's tracker has run `count` whole rounds that started after this call (a
    round reads every active job and retries the deliveries that wait): how a test waits for
    "the next rounds changed nothing" instead of sleeping for them."""
    tracker = bot.tracker
    rounds = 0
    enough = asyncio.Event()
    poll_once = tracker.poll_once

    async def counted() -> Any:
        nonlocal rounds
        try:
            return await poll_once()
        finally:
            rounds += 1
            if rounds >= count:
                enough.set()

    tracker.poll_once = counted  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(enough.wait(), timeout)
    finally:
        del tracker.poll_once  # the class's own again


@contextlib.asynccontextmanager
async def world(
    fake: FakeDiscord,
    tmp_path: Path,
    *,
    users: int = 1,
    database_url: str | None = None,
    **sim_config: Any,
) -> AsyncIterator[World]:
    # A prepared clip unless the test asks for `clip="render"`: these tests look at a video's size
    # and length, never at what its frames show, and a render per prompt costs a second of CPU.
    sim_config.setdefault("clip", "prepared")
    # Half a second: done by the bot's first poll. Tests about jobs under way say how long.
    config = SimConfig(job_seconds=sim_config.pop("job_seconds", 0.5), **sim_config)
    sim = SimServer(config)
    await sim.start()
    try:
        guild = fake.add_guild("Video Club")
        channel = fake.add_text_channel(guild, "videos")
        members = []
        for i in range(users):
            user = fake.add_user(f"member{i}")
            fake.add_member(guild, user)
            members.append(user)
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        yield World(fake, sim, data_dir, guild, channel, members, database_url=database_url)
    finally:
        await sim.stop()


def video_attachment(message: Message) -> bytes | None:
    for attachment in message.attachments:
        if attachment.filename.endswith(".mp4"):
            return attachment.data
    return None
