"""DISCORD_API_BASE: every REST call to Discord goes to the address it names (a shared
rate-limit proxy in production; here the fake Discord's REST API, with discord.py's own default
pointed at a closed port, so a call that ignored the setting would fail)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from discord.http import Route

from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url) as env:
        yield env


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_rest_calls_go_through_the_configured_base(w: World) -> None:
    Route.BASE = f"http://127.0.0.1:{closed_port()}/api/v10"
    async with w.bot(discord_api_base=w.fake.api_base):
        asked = await w.fake.dispatch_slash(
            "video", {"prompt": "a fox through the proxy"}, user=w.user, channel=w.channel
        )
        await w.wait_for(
            lambda: asked.original is not None and video_attachment(asked.original) is not None
        )
    # Synced commands, the defer, the edits and the upload all reached Discord.
    assert any(r.method == "PUT" and "/commands" in r.path for r in w.fake.requests)
    assert asked.edits >= 2
