"""The bot under test, in a process of its own: the real `VideoBot` pointed at a fake Discord that
runs in the benchmark's process (see `benchmarks.harness.BotProcess`).

Keeping the bot apart from the fake Discord and the simulator means the bot has an interpreter (and
a core) to itself, as it does in production where Discord and the video API are remote, and that
its RSS is its own. The parent sends the addresses, token and settings as one JSON line on stdin,
then talks to it over stdin/stdout, one JSON line per command:

    stats   {"rss": bytes, "hwm": bytes, "blocks": int, "active": int, "tasks": int}
            (after a full garbage collection; "hwm" is the kernel's peak RSS)
    acks    {interaction id: [received, acked]}: when the bot's gateway handler got each
            INTERACTION_CREATE and when it issued the callback request (time.time(), stamped by
            two thin wrappers around discord.py, installed before the bot is built when the
            parent asks for "instrument"; empty otherwise)
    mark    (with BENCH_TRACEMALLOC=1 in the environment) take a tracemalloc snapshot
    diff    {"total": bytes, "top": [...]}: how much the traced allocations grew since `mark`,
            and the 25 source files that grew most, as lines of text
    traced  (with BENCH_TRACEMALLOC=1) {"now": bytes, "peak": bytes} traced by tracemalloc, and
            the peak mark reset: how much Python memory a stretch of work needed at its height
    trim    {"rss": bytes} after gc and glibc's malloc_trim(0): what remains once the allocator
            has handed its free pages back (a diagnostic; it changes the process's state)
    quit    close the bot as a shutdown does, then exit

With "defer_only" in the configuration the process runs `DeferOnly` instead of the bot: a bare
discord.py client that defers every /video and does nothing else (the floor for ack latency).

The bot logs at WARNING and above to stderr, which the parent keeps in a file. With
BENCH_PROFILE=FILE in the environment the whole process runs under cProfile (see `main`).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import ctypes
import gc
import json
import logging
import os
import sys
import time
import tracemalloc
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from discord.state import ConnectionState
from discord.webhook.async_ import AsyncWebhookAdapter

from benchmarks.common import proc_status
from bot.settings import Settings
from discordbot.client import VideoBot

# interaction id -> [INTERACTION_CREATE handled, callback request issued]
STAMPS: dict[int, list[float]] = {}


def _instrument() -> None:
    """Stamp the bot's side of each ack (measurement only: behaviour is unchanged)."""
    parse = ConnectionState.parse_interaction_create
    respond = AsyncWebhookAdapter.create_interaction_response

    def parse_interaction_create(self: ConnectionState[Any], data: Any) -> None:
        STAMPS[int(data["id"])] = [time.time()]
        parse(self, data)

    def create_interaction_response(
        self: AsyncWebhookAdapter, interaction_id: int, token: str, **kwargs: Any
    ) -> Any:
        stamps = STAMPS.get(int(interaction_id))
        if stamps is not None and len(stamps) == 1:
            stamps.append(time.time())
        return respond(self, interaction_id, token, **kwargs)

    # ConnectionState collects its parse_* methods when it is built, so this precedes the bot.
    ConnectionState.parse_interaction_create = parse_interaction_create  # type: ignore[method-assign]
    AsyncWebhookAdapter.create_interaction_response = create_interaction_response  # type: ignore[method-assign]


async def _no_wait(shard_id: int | None, *, initial: bool = False) -> None:
    # A forced re-identify costs discord.py 5 real seconds; the fake never rate limits it.
    return None


class DeferOnly(discord.Client):
    """The floor for ack latency: a discord.py client whose /video only defers, nothing else.
    What it measures is discord.py, the loopback and the fake Discord, without the bot's work."""

    def __init__(self, guild_ids: list[int]) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)
        self.guild_ids = guild_ids

        @self.tree.command(name="video", description="Generate a video from a prompt")
        async def video(interaction: discord.Interaction, prompt: str) -> None:
            await interaction.response.defer(thinking=True)

    async def setup_hook(self) -> None:
        for gid in self.guild_ids:
            guild = discord.Object(id=gid)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)


async def _stats(bot: discord.Client) -> dict[str, Any]:
    gc.collect()
    status = proc_status()
    # Counted before the query below: aiosqlite's thread keeps the last result it produced (here
    # every active job's row) until its next operation.
    blocks = sys.getallocatedblocks()
    active = len(await bot.store.active_jobs()) if isinstance(bot, VideoBot) else 0
    return {
        "rss": status["VmRSS"],
        "hwm": status["VmHWM"],
        "blocks": blocks,
        "active": active,
        "tasks": len(asyncio.all_tasks()),
    }


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config: dict[str, Any] = json.loads(await reader.readline())
    Route.BASE = config["api_base"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config["gateway_url"])
    discord.Asset.BASE = config["cdn_base"]
    if config.get("instrument"):
        _instrument()
    settings = Settings(_env_file=None, **config["settings"])
    defer_only = bool(config.get("defer_only"))
    bot = DeferOnly(settings.discord_guild_ids) if defer_only else VideoBot(settings)
    bot.before_identify_hook = _no_wait  # type: ignore[method-assign]
    runner = asyncio.create_task(bot.start(config["token"]), name="bot")

    def reply(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    marks: list[tracemalloc.Snapshot] = []
    try:
        while True:
            line_task = asyncio.ensure_future(reader.readline())
            done, _ = await asyncio.wait({line_task, runner}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                line_task.cancel()
                runner.result()  # raises whatever stopped the bot
                return
            command = line_task.result().decode().strip()
            if command in ("", "quit"):
                return
            if command == "stats":
                reply(await _stats(bot))
            elif command == "mark":
                gc.collect()
                marks[:] = [tracemalloc.take_snapshot()] if tracemalloc.is_tracing() else []
                reply({"ok": bool(marks)})
            elif command == "diff" and marks:
                gc.collect()
                grown = tracemalloc.take_snapshot().compare_to(marks[0], "filename")
                total = sum(stat.size_diff for stat in grown)
                reply({"total": total, "top": [str(stat) for stat in grown[:25]]})
            elif command == "traced":
                now, peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                reply({"now": now, "peak": peak})
            elif command == "trim":
                gc.collect()
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                reply({"rss": proc_status()["VmRSS"]})
            elif command == "acks":
                reply({str(k): v for k, v in STAMPS.items() if len(v) == 2})
            else:
                reply({"error": f"unknown command {command!r}"})
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, 10)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # BENCH_PROFILE=FILE: run under cProfile and write its stats to FILE (to see where time goes).
    if os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start()
    target = os.environ.get("BENCH_PROFILE")
    if not target:
        asyncio.run(serve())
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        asyncio.run(serve())
    finally:
        profile.disable()
        profile.dump_stats(target)


if __name__ == "__main__":
    main()
