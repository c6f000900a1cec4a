"""The bot process: one database, one HTTP client and one tracker, opened in `setup_hook` and
closed in reverse order in `close()`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from bot.backend import Backend, open_backend
from bot.catalog import Catalog
from bot.cooldown import Cooldown
from bot.delivery import Deliverer, DeliverySink
from bot.discovery import choose_catalog
from bot.files import make_private_tree
from bot.memory import MemoryReleaser
from bot.quota import QuotaPolicy
from bot.reference import DecodeGate
from bot.settings import Settings
from bot.store import Store
from bot.submit import JobService
from bot.tracker import Tracker
from discordbot.access import GatedTree, command_contexts, command_installs

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.video",
    "cogs.history",
    "cogs.quota",
    "cogs.admin",
    "cogs.actions",
    "cogs.animate",
    "cogs.errors",
)
COMMAND_HASH_KEY = "command_tree_hash"
# Concurrent HTTP connections to Discord (REST and interaction webhooks together).
DISCORD_CONNECTIONS = 32


class VideoBot(commands.Bot):
    """Everything process-wide hangs off this object; cogs reach the core through it."""

    store: Store
    backend: Backend
    tracker: Tracker
    jobs: JobService
    deliverer: Deliverer
    quota: QuotaPolicy
    catalog: Catalog
    # Members' images from Discord's CDN, read with a size cap (see discordbot/attachments.py).
    cdn: aiohttp.ClientSession

    def __init__(self, settings: Settings, *, sink_factory: Any = None) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            # Nobody is pinged unless a message names them explicitly (see discordbot.sink).
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            # The bot never reads old messages from the cache; with many jobs it was most of the
            # memory each one costs.
            max_messages=None,
            tree_cls=GatedTree,
            allowed_contexts=command_contexts(settings.allow_dms),
            allowed_installs=command_installs(),
        )
        self.settings = settings
        self.catalog = settings.catalog()
        self._stack = AsyncExitStack()
        self._sink_factory = sink_factory
        self.memory = MemoryReleaser()
        self.decoder = DecodeGate(settings.reference_max_decodes)
        self.show_again = Cooldown(settings.show_again_cooldown_seconds)

    async def login(self, token: str) -> None:
        # discord.py opens as many connections as there are requests at once; a burst of
        # commands then pays a handshake each. A bounded pool reuses them (made here, inside
        # the running loop, as aiohttp requires).
        self.http.connector = aiohttp.TCPConnector(limit=DISCORD_CONNECTIONS)
        await super().login(token)

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    async def setup_hook(self) -> None:
        settings = self.settings
        # Owner-only, whatever the umask and whatever an older version left (see bot/files.py).
        await asyncio.to_thread(make_private_tree, self.data_dir)
        self.store = await Store.open(self.data_dir / "bot.sqlite3")
        self._stack.push_async_callback(self.store.close)
        self.cdn = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=8), headers={"User-Agent": "discord-video-bot"}
        )
        self._stack.push_async_callback(self.cdn.close)
        # Logs one line saying which backend (the simulator, or the server and its profile).
        self.backend = await open_backend(settings, self._stack)
        # The owner's catalog, else what the server says it serves (bot/discovery.py), else the
        # bundled one; the commands below offer it, re-synced only when it changed.
        offered = await choose_catalog(settings, self.backend.client, self.backend.profile)
        self.catalog = offered.catalog
        self.backend.use_catalog(self.catalog)
        log.info("catalog: %s", offered.origin)
        from discordbot.sink import DiscordSink  # noqa: PLC0415 - cogs import this module

        sink: DeliverySink = (self._sink_factory or DiscordSink)(self)
        self.deliverer = Deliverer(
            self.store,
            self.backend.client,
            sink,
            self.data_dir,
            max_attempts=settings.delivery_max_attempts,
        )
        self.tracker = Tracker(
            self.store,
            self.backend.client,
            self.deliverer,
            interval=settings.poll_interval_seconds,
            create_grace=settings.create_grace_seconds,
        )
        self.quota = QuotaPolicy.from_settings(settings, self.store)
        self.jobs = JobService(
            self.store,
            self.backend.client,
            self.catalog,
            self.tracker,
            self.data_dir,
            policy=self.quota,
            deadline_seconds=settings.job_deadline_minutes * 60,
            max_concurrent=self.quota.max_concurrent,
        )

        # Each tracker round (and each wake) starts queued jobs, then retries deliveries that
        # failed earlier (a Discord outage, a download error), so none waits for a restart,
        # and hands what the last round freed back to the system (see bot/memory.py).
        async def each_round() -> None:
            await self.jobs.start_queued()
            await self.deliverer.sweep()
            await self.memory.release()

        self.tracker.before_round = each_round
        for ext in EXTENSIONS:
            await self.load_extension(ext)
        await self.sync_commands()
        await self.warn_if_public()
        await self.deliverer.resume()
        for intake in await self.store.unrecorded_intakes():
            # Told first, forgotten after: telling twice only edits the same reply again.
            await sink.answer_unrecorded(intake)
            await self.store.drop_intake(intake.interaction_id)
        self.tracker.start()

    async def close(self) -> None:
        # Reverse order of setup: stop producing work, finish or cancel deliveries, then close
        # the HTTP client and the database (the exit stack), then the gateway.
        if hasattr(self, "tracker"):
            await self.tracker.stop()
        if hasattr(self, "deliverer"):
            await self.deliverer.tasks.cancel_all()
        await self._stack.aclose()
        await super().close()

    async def warn_if_public(self) -> None:
        """Say at start when anyone may add the bot to a server and spend on it there."""
        if self.settings.allowed_guild_ids:
            return
        try:
            info = await self.application_info()
        except discord.HTTPException as exc:
            log.info("could not read the application's settings: %s", exc)
            return
        if info.bot_public:
            log.warning(
                "the application is public and ALLOWED_GUILD_IDS is empty: anyone can add the "
                "bot to a server and spend on it there. Switch off 'Public Bot' in the developer "
                "portal (Bot tab), or set ALLOWED_GUILD_IDS."
            )

    # ------------------------------------------------------------------ command sync

    def _command_payload(self) -> list[dict[str, Any]]:
        return [cmd.to_dict(self.tree) for cmd in self.tree.get_commands()]

    def command_hash(self) -> str:
        payload = {
            "commands": self._command_payload(),
            "guilds": sorted(self.settings.discord_guild_ids),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    async def sync_commands(self) -> bool:
        """Sync only when the declared commands (or their target guilds) changed."""
        digest = self.command_hash()
        if await self.store.get_meta(COMMAND_HASH_KEY) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        guild_ids = self.settings.discord_guild_ids
        if guild_ids:
            for gid in guild_ids:
                guild = discord.Object(id=gid)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        await self.store.set_meta(COMMAND_HASH_KEY, digest)
        log.info("slash commands synced to %s", guild_ids or "all guilds (global)")
        return True


def run_bot(settings: Settings) -> int:
    if settings.discord_token is None or not settings.discord_token.get_secret_value():
        print(
            "DISCORD_TOKEN is not set: create an application at "
            "https://discord.com/developers/applications, add a bot, copy its token into .env "
            "as DISCORD_TOKEN=... (see README, 'Create the Discord application').",
            file=sys.stderr,
        )
        return 2
    bot = VideoBot(settings)
    try:
        asyncio.run(_run(bot, settings.discord_token.get_secret_value()))
    except discord.LoginFailure:
        print("DISCORD_TOKEN was refused by Discord: copy the bot token again.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _run(bot: VideoBot, token: str) -> None:
    async with bot:
        await bot.start(token)
