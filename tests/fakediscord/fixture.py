"""The pytest fixture: a started `FakeDiscord` with discord.py pointed at it, restored after.

discord.py reads three module-level addresses: `Route.BASE` for REST (interaction webhooks
included), `DiscordWebSocket.DEFAULT_GATEWAY` for the first gateway connection (READY's
`resume_gateway_url` brings reconnects back to the fake) and `Asset.BASE` for CDN assets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import discord
import pytest_asyncio
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from tests.fakediscord.server import FakeDiscord


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base, first gateway URL and CDN base at `fake`, then restore."""
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, discord.Asset.BASE)
    Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    discord.Asset.BASE = fake.cdn_base
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, discord.Asset.BASE = saved


@contextlib.asynccontextmanager
async def running(
    client: discord.Client,
    fake: FakeDiscord,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - bounds connecting and shutting down
) -> AsyncIterator[discord.Client]:
    """Run `client` against `fake` (login, setup_hook, gateway) until the block ends; the block
    starts once the bot has identified and received its guilds. Errors from the client task are
    re-raised on exit."""
    task = asyncio.create_task(client.start(fake.token), name="fake-discord-bot")
    try:
        waiter = asyncio.create_task(fake.wait_until_connected(timeout))
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            task.result()  # raises what stopped the bot
            raise AssertionError("the bot stopped before connecting to the fake gateway")
        waiter.result()
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout)


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A fake Discord on 127.0.0.1 with discord.py pointed at it for the test's duration."""
    fake = FakeDiscord()
    await fake.start()
    try:
        with pointed_at(fake):
            yield fake
    finally:
        await fake.stop()
