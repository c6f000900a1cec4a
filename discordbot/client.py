"""The bot process: the Discord client, which opens the core's services and loads every feature's
Cog in `setup_hook`, and closes them in reverse order, after Discord, in `close()`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import discord
from discord.ext import commands
from discord.http import Route

from bot.backend import Backend
from bot.catalog import Catalog
from bot.cooldown import Cooldown
from bot.delivery import Deliverer
from bot.files import DataFolderBusy
from bot.quota import QuotaPolicy
from bot.reference import DecodeGate
from bot.services import Services, open_services
from bot.settings import Settings
from bot.store import Store
from bot.submit import JobService
from bot.tracker import Tracker
from discordbot.access import GatedTree, command_contexts, command_installs
from discordbot.i18n import catalogs_digest
from discordbot.sink import DiscordSink
from discordbot.translator import CatalogTranslator

log = logging.getLogger(__name__)

# Every feature's Cog, loaded in this order by `setup_hook` (their commands are synced after).
EXTENSIONS = (
    "cogs.video",
    "cogs.history",
    "cogs.quota",
    "cogs.admin",
    # After cogs.admin, in this order: each attaches its group to `/video-admin`.
    "cogs.admin_quota",
    "cogs.admin_settings",
    "cogs.owner",
    "cogs.actions",
    "cogs.animate",
    "cogs.errors",
)
COMMAND_HASH_KEY = "command_tree_hash"
# Concurrent HTTP connections to Discord (REST and interaction webhooks together).
DISCORD_CONNECTIONS = 32


class VideoBot(commands.AutoShardedBot):
    """The Discord client. Its resources open in one place, `setup_hook` (the CDN session, then
    the core's services, on one exit stack), and close in reverse order in `close()`, after the
    connection to Discord. Cogs take what they need from it once, when they are made.
    It runs the shards SHARD_IDS of SHARD_COUNT (all of Discord's recommended count when unset),
    each answering the interactions of its own guilds."""

    # Members' images from Discord's CDN, read with a size cap (see discordbot/attachments.py).
    cdn: aiohttp.ClientSession
    # Where jobs are shown in Discord; the services deliver through it.
    sink: DiscordSink

    def __init__(self, settings: Settings) -> None:
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
            shard_count=settings.shard_count,
            # None (discord.py's default, missing from its stub): every shard of the count.
            shard_ids=settings.shard_ids or None,  # type: ignore[arg-type]
        )
        self.settings = settings
        if settings.discord_api_base:
            # discord.py sends every REST call (interaction webhooks included) to Route.BASE.
            Route.BASE = settings.discord_api_base
        self._stack = AsyncExitStack()
        self._services: Services | None = None
        self._closing: asyncio.Task[None] | None = None
        self.decoder = DecodeGate(settings.reference_max_decodes)
        self.show_again = Cooldown(settings.show_again_cooldown_seconds)

    async def login(self, token: str) -> None:
        # discord.py opens as many connections as there are requests at once; a burst of
        # commands then pays a handshake each. A bounded pool reuses them (made here, inside
        # the running loop, as aiohttp requires).
        self.http.connector = aiohttp.TCPConnector(limit=DISCORD_CONNECTIONS)
        await super().login(token)

    # ------------------------------------------------------------------ the core's services

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the bot's services open in setup_hook")
        return self._services

    @property
    def catalog(self) -> Catalog:
        """The catalog in use: the one the services settled on (the owner's, discovered or
        bundled); before they open, the one the settings name."""
        if self._services is None:
            return self.settings.catalog()
        return self._services.catalog

    # Shortcuts for scripts and tests; cogs take `services` once.
    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def backend(self) -> Backend:
        return self.services.backend

    @property
    def jobs(self) -> JobService:
        return self.services.jobs

    @property
    def tracker(self) -> Tracker:
        return self.services.tracker

    @property
    def deliverer(self) -> Deliverer:
        return self.services.deliverer

    @property
    def quota(self) -> QuotaPolicy:
        return self.services.quota

    # ------------------------------------------------------------------ start and stop

    async def setup_hook(self) -> None:
        stack = self._stack
        self.cdn = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=8), headers={"User-Agent": "discord-video-bot"}
            )
        )
        self.sink = DiscordSink(self, self)
        self._services = await stack.enter_async_context(open_services(self.settings, self.sink))
        # Before the commands are added and synced: discord.py asks it while building the
        # payload it syncs (names, descriptions and choices in each member's language).
        await self.tree.set_translator(CatalogTranslator())
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                log.exception("could not load %s", extension)
                raise
        await self.sync_commands()
        await self.warn_if_public()
        await self.services.resume()
        self.services.start()

    async def close(self) -> None:
        # Once, however many callers: the connection to Discord first (no new interactions),
        # then what setup_hook opened, in reverse (the tracker and deliveries stop, then the
        # core closes; then the CDN session).
        if self._closing is None:
            self._closing = asyncio.create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            await super().close()
        finally:
            await self._stack.aclose()

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
            # The localizations synced with the commands come from the catalogs.
            "translations": catalogs_digest(),
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
    except DataFolderBusy as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _run(bot: VideoBot, token: str) -> None:
    async with bot:
        await bot.start(token)
